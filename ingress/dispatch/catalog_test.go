package dispatch

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/contractstest"
)

// A cached tool list belongs to the whole credential it was seen with: two
// credentials forced to one short fingerprint get their own lists.
func TestCatalog_KeysListsByTheWholeCredential(t *testing.T) {
	d, nc, opener := newDispatcher(t)
	sub, err := nc.Subscribe(contracts.ListSubject("jira"), func(m *nats.Msg) {
		req, err := contracts.DecodeListRequest(requestOf(m))
		if err != nil {
			t.Error(err)
			return
		}
		token, err := opener.Open(req.Token, req.Binding(m.Reply), time.Now())
		if err != nil {
			t.Error(err)
			return
		}
		tools, _ := json.Marshal([]map[string]string{{"name": "for-" + token.Reveal()[contracts.HeaderAuthorization]}})
		_ = respond(m, contracts.NewListResponse(req.RequestID, tools, nil))
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	restore := contracts.OverrideFingerprintForTest("fp_000000000000")
	defer restore()
	c := NewCatalog(d, time.Hour)
	for _, user := range []string{"alice", "bob", "alice"} {
		tools, cerr := c.Tools(contractstest.Ctx(t), List{KeyID: "k", Server: "jira", Token: contracts.NewToken(user), Timeout: 5 * time.Second})
		if cerr != nil || len(tools) != 1 || tools[0].Name != "for-"+user {
			t.Fatalf("%s: %v %+v", user, cerr, tools)
		}
	}
}
