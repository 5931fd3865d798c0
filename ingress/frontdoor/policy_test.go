package frontdoor_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/ingress/auth"
	"github.com/toolbus/toolbus/ingress/frontdoor"
)

// policy is a Policy of servers a and a-b (a name with the separator in
// it) whose key "k" may use server a only; no catalog: prefixed names only.
func policy(t *testing.T) (*frontdoor.Policy, *frontdoor.Caller) {
	t.Helper()
	cfg := &config.File{
		MCPServers: map[string]*config.Server{
			"a":   {URL: "http://127.0.0.1:9/mcp", Timeout: config.Duration(10 * time.Second), MaxTimeout: config.Duration(20 * time.Second)},
			"a-b": {URL: "http://127.0.0.1:9/mcp"},
		},
		Keys: []config.Key{{Name: "k", Key: "sk-k", Servers: []string{"a"}}},
	}
	if err := cfg.Normalize(); err != nil {
		t.Fatal(err)
	}
	keys, err := auth.New(cfg.Keys, cfg.Ingress.Separator())
	if err != nil {
		t.Fatal(err)
	}
	p := frontdoor.New(cfg, keys, nil, testIdentity(t))
	c, cerr := p.Authenticate(http.Header{"X-Litellm-Key": {"sk-k"}})
	if cerr != nil {
		t.Fatal(cerr)
	}
	return p, c
}

// A <server>-<tool> name splits at the longest configured server, whatever
// the key may use: a-b-x names tool x of a-b (which this key may not use),
// never tool b-x of a.
func TestResolveCall_LongestServerWins(t *testing.T) {
	p, c := policy(t)
	if _, err := p.ResolveCall(t.Context(), c, frontdoor.CallInput{Name: "a-b-x"}); err == nil || err.Code != "forbidden" {
		t.Fatalf("a-b-x: %v, want forbidden", err)
	}
	call, err := p.ResolveCall(t.Context(), c, frontdoor.CallInput{Name: "a-x"})
	if err != nil || call.Server.Name != "a" || call.Tool != "x" {
		t.Fatalf("a-x: %+v %v", call, err)
	}
	if _, err := p.ResolveCall(t.Context(), c, frontdoor.CallInput{Name: "x"}); err == nil || err.Code != "unknown_tool" {
		t.Fatalf("a bare name on a prefixed door: %v, want unknown_tool", err)
	}
}

// The budget is the caller's ask, or the server's default, within the
// server's and the ingress's maximum.
func TestResolveCall_Budget(t *testing.T) {
	p, c := policy(t)
	for _, tt := range []struct {
		asked, want time.Duration
	}{
		{0, 10 * time.Second},
		{5 * time.Second, 5 * time.Second},
		{time.Hour, 20 * time.Second},
	} {
		call, err := p.ResolveCall(t.Context(), c, frontdoor.CallInput{Server: "a", Name: "x", Timeout: tt.asked})
		if err != nil || call.Timeout != tt.want {
			t.Errorf("asked %s: %v %v, want %s", tt.asked, call, err, tt.want)
		}
	}
}

// LiteLLM's selection, decided by Policy.Servers alone: names, aliases,
// LiteLLM server ids and access groups, in a path or the headers.
func TestServers_Selection(t *testing.T) {
	cfg := &config.File{
		MCPServers: map[string]*config.Server{
			"a.b": {URL: "http://127.0.0.1:9/mcp", AccessGroups: []string{"g"}},
			"c":   {URL: "http://127.0.0.1:9/mcp", Alias: "see", AccessGroups: []string{"g", "h"}},
			"d":   {URL: "http://127.0.0.1:9/mcp"},
		},
		Keys: []config.Key{{Name: "k", Key: "sk-k", AccessGroups: []string{"h"}}, {Name: "m", Key: "sk-m"}},
	}
	if err := cfg.Normalize(); err != nil {
		t.Fatal(err)
	}
	keys, err := auth.New(cfg.Keys, cfg.Ingress.Separator())
	if err != nil {
		t.Fatal(err)
	}
	p := frontdoor.New(cfg, keys, nil, testIdentity(t))
	k, _ := p.Authenticate(http.Header{"X-Litellm-Key": {"sk-k"}})
	m, _ := p.Authenticate(http.Header{"X-Litellm-Key": {"sk-m"}})
	names := func(c *frontdoor.Caller, sel frontdoor.Selection) string {
		servers, err := p.Servers(c, sel)
		if err != nil {
			return string(err.Code)
		}
		var out []string
		for _, s := range servers {
			out = append(out, s.Name)
		}
		return strings.Join(out, ",")
	}
	for _, tt := range []struct {
		caller *frontdoor.Caller
		sel    frontdoor.Selection
		want   string
	}{
		{m, frontdoor.Selection{}, "a.b,c,d"},
		{m, frontdoor.Selection{Path: "see"}, "c"},
		{m, frontdoor.Selection{Path: cfg.MCPServers["a.b"].ServerID()}, "a.b"},
		{m, frontdoor.Selection{Path: "d, a.b ,d"}, "a.b,d"},
		{m, frontdoor.Selection{Path: "g"}, "a.b,c"},
		{m, frontdoor.Selection{Path: "nope"}, "unknown_server"},
		{m, frontdoor.Selection{Path: ","}, "unknown_server"},
		{m, frontdoor.Selection{Path: strings.Repeat("d,", 65)}, "invalid_request"},
		{m, frontdoor.Selection{Servers: "d", Groups: "h"}, "c,d"},
		{m, frontdoor.Selection{Groups: "d"}, "unknown_server"}, // a server is no group
		{m, frontdoor.SelectionOf("d", http.Header{"X-Mcp-Servers": {"c"}}), "d"},
		{k, frontdoor.Selection{}, "c"},
		{k, frontdoor.Selection{Path: "g"}, "c"}, // the group's servers the key may use
		{k, frontdoor.Selection{Path: "a.b"}, "forbidden"},
		{k, frontdoor.Selection{Path: "c,a.b"}, "forbidden"},
		{k, frontdoor.Selection{Servers: "d"}, "forbidden"},
	} {
		if got := names(tt.caller, tt.sel); got != tt.want {
			t.Errorf("%s %+v: %s, want %s", tt.caller.Key.Name, tt.sel, got, tt.want)
		}
	}
	if name, ok := p.Single(frontdoor.Selection{Path: "see"}); !ok || name != "c" {
		t.Errorf("Single(alias) = %q, %v", name, ok)
	}
	for _, sel := range []frontdoor.Selection{{Path: "g"}, {Path: "c,d"}, {Servers: "c"}} {
		if _, ok := p.Single(sel); ok {
			t.Errorf("Single(%+v): a group, a list or a header is no server's own endpoint", sel)
		}
	}
}

// testIdentity keys identities with a fixed test secret.
func testIdentity(t *testing.T) *auth.Identity {
	t.Helper()
	id, err := auth.NewIdentity([]byte("test-identity-secret-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	return id
}
