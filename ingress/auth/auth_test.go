package auth

import (
	"net/http"
	"strings"
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
		// LiteLLM's fallback: Authorization, only when no key header is present.
		{"gateway key in Authorization", map[string]string{"Authorization": "Bearer sk-all"}, "all"},
		{"gateway key in Authorization without Bearer", map[string]string{"Authorization": "sk-jira"}, "jira-only"},
		{"Authorization that is no gateway key", map[string]string{"Authorization": "Bearer user-token"}, ""},
		{"Authorization of another scheme", map[string]string{"Authorization": "Basic sk-all"}, ""},
		{"a wrong key header is not overridden by Authorization", map[string]string{"x-litellm-key": "sk-other", "Authorization": "Bearer sk-all"}, ""},
		{"a key header wins over Authorization", map[string]string{"x-litellm-key": "sk-jira", "Authorization": "Bearer sk-all"}, "jira-only"},
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

// Find says whether the key came in Authorization, so that the caller
// forwards it to no server; refusals never echo what was presented.
func TestKeys_FindReportsAuthorization(t *testing.T) {
	keys := testKeys(t)
	for _, tt := range []struct {
		h      http.Header
		inAuth bool
	}{
		{http.Header{"Authorization": {"Bearer sk-all"}}, true},
		{http.Header{"X-Litellm-Key": {"sk-all"}, "Authorization": {"Bearer sk-all"}}, false},
		{http.Header{"X-Litellm-Api-Key": {"sk-all"}, "Authorization": {"Bearer user"}}, false},
	} {
		p, inAuth, err := keys.Find(tt.h)
		if err != nil || p.Name != "all" || inAuth != tt.inAuth {
			t.Errorf("%v: %v, %v, %v; want all, %v", tt.h, p, inAuth, err, tt.inAuth)
		}
	}
	_, _, err := keys.Find(http.Header{"Authorization": {"Bearer user-secret-token"}})
	if err == nil || err.Code != contracts.CodeUnauthorized || strings.Contains(err.Message, "user-secret-token") {
		t.Fatalf("got %v, want an unauthorized error that does not echo the value", err)
	}
}

// Tools are checked as (server, tool) pairs: with servers pyup and pyup-x,
// a key allowed tool secret of pyup-x (shown as pyup-x-secret) may not
// call tool x-secret of pyup, whose name is the same string - for a
// configured key and for a managed key alike.
func TestPrincipal_ToolPairs(t *testing.T) {
	f, _, err := config.Parse([]byte(`
mcp_servers:
  pyup: {url: "http://127.0.0.1:7001/mcp"}
  pyup-x: {url: "http://127.0.0.1:7002/mcp"}
keys:
  - {name: k, key: sk-k, servers: [pyup-x, pyup], tools: [pyup-x-secret]}
`), config.Options{})
	if err == nil {
		t.Fatal("the ambiguous entry pyup-x-secret was accepted")
	}
	f, _, err = config.Parse([]byte(`
mcp_servers:
  pyup: {url: "http://127.0.0.1:7001/mcp"}
  pyup-x: {url: "http://127.0.0.1:7002/mcp"}
keys:
  - {name: k, key: sk-k, servers: [pyup-x, pyup], tools: [other]}
`), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f.Keys[0].Tools = nil // what the check uses is the pairs
	keys, err := New(f.Keys, f.Ingress.Separator())
	if err != nil {
		t.Fatal(err)
	}
	configured, _ := keys.Authenticate(http.Header{"X-Litellm-Key": {"sk-k"}})
	refs, err := f.KeyToolRefs([]string{"pyup-x"}, []string{"secret"})
	if err != nil {
		t.Fatal(err)
	}
	managed := newPrincipal("m", [32]byte{}, []string{"pyup-x", "pyup"}, []string{"pyup-x-secret"}, "-")
	managed.setRefs(refs)
	for _, p := range []*Principal{configured, managed} {
		if p.AllowsTool("pyup", "x-secret") || p.AllowsTool("pyup-x", "x-secret") {
			t.Errorf("%s: a tool it was not given is allowed", p.Name)
		}
	}
	if !configured.AllowsTool("pyup", "other") || !configured.AllowsTool("pyup-x", "other") || configured.AllowsTool("pyup-x", "secret") {
		t.Error("configured: want tool other on both servers only")
	}
	if !managed.AllowsTool("pyup-x", "secret") {
		t.Error("managed: its own tool refused")
	}
}
