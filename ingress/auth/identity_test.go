package auth_test

import (
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/ingress/auth"
)

// Replicas starting at once, with no identity_secret, end with one secret:
// the same credentials give the same identity on each; a configured secret
// gives other identities; a short one is refused.
func TestLoadIdentity_ReplicasAgree(t *testing.T) {
	ns := contractstest.StartNATS(t)
	js, err := jetstream.New(ns.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	creds := [][2]string{{"authorization", "Bearer u"}}
	var wg sync.WaitGroup
	owners := make([]string, 4)
	for i := range owners {
		wg.Go(func() {
			id, err := auth.LoadIdentity(contractstest.Ctx(t), js, "", 1)
			if err != nil {
				t.Error(err)
				return
			}
			owners[i] = id.Of("k", creds)
		})
	}
	wg.Wait()
	for _, o := range owners[1:] {
		if o != owners[0] || o == "" {
			t.Fatalf("replicas disagree: %v", owners)
		}
	}
	configured, err := auth.LoadIdentity(contractstest.Ctx(t), js, "a-configured-secret-of-some-length", 1)
	if err != nil {
		t.Fatal(err)
	}
	if configured.Of("k", creds) == owners[0] {
		t.Fatal("the configured secret was not used")
	}
	if configured.Of("k", creds) == configured.Of("k", [][2]string{{"authorization", "Bearer v"}}) ||
		configured.Of("k", nil) == configured.Of("k2", nil) {
		t.Fatal("different callers share an identity")
	}
	if _, err := auth.NewIdentity([]byte("short")); err == nil {
		t.Fatal("a 5-byte secret was accepted")
	}
}
