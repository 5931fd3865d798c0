package auth

import (
	"net/http"
	"testing"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
)

func testKeys(t *testing.T) *Keys {
	t.Helper()
	k, err := New([]config.Key{
		{Name: "all", KeySHA256: config.HashKey("sk-all")},
		{Name: "jira-only", KeySHA256: config.HashKey("sk-jira"), Servers: []string{"jira"}, Tools: []string{"jira-create_issue"}},
	}, "")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeys_Authenticate(t *testing.T) {
	keys := testKeys(t)
	tests := []struct {
		name    string
		headers map[string]string
		want    string // principal name, "" for refused
	}{
		{"x-litellm-key", map[string]string{"x-litellm-key": "sk-all"}, "all"},
		{"x-litellm-api-key", map[string]string{"x-litellm-api-key": "sk-jira"}, "jira-only"},
		{"Bearer prefix", map[string]string{"x-litellm-key": "Bearer sk-all"}, "all"},
		{"lower-case bearer prefix", map[string]string{"x-litellm-api-key": "bearer sk-all"}, "all"},
		{"x-litellm-key wins", map[string]string{"x-litellm-key": "sk-jira", "x-litellm-api-key": "sk-all"}, "jira-only"},
		{"Authorization is never a gateway key", map[string]string{"Authorization": "Bearer sk-all"}, ""},
		{"unknown key", map[string]string{"x-litellm-key": "sk-other"}, ""},
		{"key with a suffix", map[string]string{"x-litellm-key": "sk-all-and-more"}, ""},
		{"empty", map[string]string{"x-litellm-key": ""}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.headers {
				h.Set(k, v)
			}
			p, err := keys.Authenticate(h)
			if tt.want == "" {
				if err == nil || err.Code != contracts.CodeUnauthorized {
					t.Fatalf("accepted as %v (err %v)", p, err)
				}
				return
			}
			if err != nil || p.Name != tt.want {
				t.Fatalf("got %v, %v; want %s", p, err, tt.want)
			}
		})
	}
}

func TestPrincipal_Allows(t *testing.T) {
	keys := testKeys(t)
	p, _ := keys.Authenticate(http.Header{"X-Litellm-Key": {"sk-jira"}})
	if !p.AllowsServer("jira") || p.AllowsServer("github") {
		t.Fatal("server allow-list")
	}
	if !p.AllowsTool("jira", "create_issue") || p.AllowsTool("jira", "delete_issue") || p.AllowsTool("github", "create_issue") {
		t.Fatal("tool allow-list")
	}
	all, _ := keys.Authenticate(http.Header{"X-Litellm-Key": {"sk-all"}})
	if !all.AllowsTool("anything", "at_all") {
		t.Fatal("a key without lists may use everything")
	}
}

func BenchmarkKeys_Authenticate(b *testing.B) {
	keys, _ := New([]config.Key{{Name: "k", KeySHA256: config.HashKey("sk-bench")}}, "")
	h := http.Header{"X-Litellm-Key": {"sk-bench"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := keys.Authenticate(h); err != nil {
			b.Fatal(err)
		}
	}
}

func TestPrincipal_ToolSeparator(t *testing.T) {
	k, err := New([]config.Key{{Name: "k", KeySHA256: config.HashKey("sk-k"), Tools: []string{"jira__create_issue"}}}, "__")
	if err != nil {
		t.Fatal(err)
	}
	p, e := k.Authenticate(http.Header{"X-Litellm-Key": []string{"sk-k"}})
	if e != nil || !p.AllowsTool("jira", "create_issue") || p.AllowsTool("jira", "delete_issue") || p.AllowsTool("jira_", "create_issue") {
		t.Fatalf("key with tools [jira__create_issue] and separator __: %+v", p)
	}
}
