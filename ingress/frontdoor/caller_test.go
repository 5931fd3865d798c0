package frontdoor_test

import (
	"cmp"
	"maps"
	"net/http"
	"strings"
	"testing"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/ingress/frontdoor"
)

// The credential decision itself, on targeted and fan-out requests. (The
// worker refuses to send a credential to an auth: none server as well, so
// the end-to-end table cannot tell which side kept it back: this test holds
// the ingress to it.) On a request that reaches every server, the generic
// Authorization goes to no server but those with passthrough_on_fanout; a
// per-server header still goes to its server.
func TestCredential(t *testing.T) {
	h := http.Header{}
	h.Set("Authorization", "Bearer general")
	h.Set("X-Mcp-Other-Authorization", "Bearer just-for-other")
	h.Set("X-Mcp-Noauth-Authorization", "Bearer must-not-reach-noauth")
	presented := read(t, h, "other", "noauth")
	targeted, fanOut := frontdoor.Targeted, frontdoor.FanOut
	for _, tt := range []struct {
		reach frontdoor.Reach
		srv   *config.Server
		want  string
	}{
		{targeted, &config.Server{Name: "demo"}, "Bearer general"},
		{targeted, &config.Server{Name: "other"}, "Bearer just-for-other"},
		{targeted, &config.Server{Name: "noauth", Auth: config.AuthNone}, ""},
		{targeted, &config.Server{Name: "none", Credentials: config.Credentials{AuthType: "none"}}, ""},
		{targeted, &config.Server{Name: "passthrough", Credentials: config.Credentials{AuthType: "true_passthrough"}}, "Bearer general"},
		{targeted, &config.Server{Name: "interactive", Credentials: config.Credentials{AuthType: "oauth2", OAuth2Flow: "authorization_code"}}, "Bearer general"},
		// A server with its own credential: nothing of the caller's is
		// sealed for it, not even a header addressed to it by name.
		{targeted, &config.Server{Name: "other", Credentials: config.Credentials{AuthType: "api_key", AuthValue: "k"}}, ""},
		{targeted, &config.Server{Name: "bearer", Credentials: config.Credentials{AuthType: "bearer_token", AuthValue: "k"}}, ""},
		{targeted, &config.Server{Name: "basic", Credentials: config.Credentials{AuthType: "basic", AuthValue: "u:p"}}, ""},
		{targeted, &config.Server{Name: "authz", Credentials: config.Credentials{AuthType: "authorization", AuthValue: "X k"}}, ""},
		{targeted, &config.Server{Name: "m2m", Credentials: config.Credentials{AuthType: "oauth2", OAuth2Flow: "client_credentials"}}, ""},
		{targeted, &config.Server{Name: "sigv4", Credentials: config.Credentials{AuthType: "aws_sigv4"}}, ""},
		{fanOut, &config.Server{Name: "demo"}, ""},
		{fanOut, &config.Server{Name: "interactive", Credentials: config.Credentials{AuthType: "oauth2"}}, ""},
		{fanOut, &config.Server{Name: "other"}, "Bearer just-for-other"},
		{fanOut, &config.Server{Name: "opted-in", PassthroughOnFanout: true}, "Bearer general"},
		{fanOut, &config.Server{Name: "other", PassthroughOnFanout: true}, "Bearer just-for-other"},
		{fanOut, &config.Server{Name: "noauth", Auth: config.AuthNone, PassthroughOnFanout: true}, ""},
		{fanOut, &config.Server{Name: "keyed", PassthroughOnFanout: true, Credentials: config.Credentials{AuthType: "api_key", AuthValue: "k"}}, ""},
		// Token exchange: the caller's token is sealed for the workers,
		// which exchange it (it never reaches the server), on every reach.
		{targeted, &config.Server{Name: "obo", Credentials: config.Credentials{AuthType: "oauth2_token_exchange"}}, "Bearer general"},
		{fanOut, &config.Server{Name: "obo", Credentials: config.Credentials{AuthType: "oauth2_token_exchange"}}, "Bearer general"},
		{fanOut, &config.Server{Name: "other", Credentials: config.Credentials{AuthType: "oauth2_token_exchange"}}, "Bearer just-for-other"},
	} {
		got := frontdoor.Credential(presented, tt.srv, tt.reach)
		if got.Reveal()["authorization"] != tt.want || (tt.want == "" && !got.IsZero()) {
			t.Errorf("%s (reach %d): %q, want %q", tt.srv.Name, tt.reach, got.Reveal(), tt.want)
		}
	}
	if got := frontdoor.Credential(read(t, http.Header{}, "demo"), &config.Server{Name: "demo"}, frontdoor.Targeted); !got.IsZero() {
		t.Errorf("no Authorization: %q, want none", got.Reveal())
	}
}

// read is frontdoor.ReadPresented of h with the servers of cfg (a File of
// those named, when cfg is nil).
func read(t *testing.T, h http.Header, servers ...string) *frontdoor.Presented {
	t.Helper()
	cfg := &config.File{MCPServers: map[string]*config.Server{}}
	for _, s := range servers {
		cfg.MCPServers[s] = &config.Server{Name: s}
	}
	p, err := frontdoor.ReadPresented(h, cfg, false)
	if err != nil {
		t.Fatalf("ReadPresented: %v", err)
	}
	return p
}

// Every header form of LiteLLM's, for every kind of server: exactly the set
// each receives.
func TestCredential_HeaderForms(t *testing.T) {
	servers := map[string]*config.Server{
		"gh":     {Name: "gh", ExtraHeaders: []string{"X-Tenant", "Authorization"}},
		"gh-ent": {Name: "gh-ent"},
		"keyed": {Name: "keyed", ExtraHeaders: []string{"X-Tenant"}, Credentials: config.Credentials{AuthType: "api_key", AuthValue: "k",
			StaticHeaders: map[string]string{"X-Static": "s"}}},
		"none":    {Name: "none", Auth: config.AuthNone},
		"aliased": {Name: "aliased", Alias: "al"}, // LiteLLM's x-mcp-<alias>-<header>
		"local":   {Name: "local", Transport: config.TransportStdio, AuthEnv: "TOKEN", Env: map[string]string{"TENANT": "t=${X-Tenant}", "K": "${X-Api-Key}"}},
	}
	cfg := &config.File{MCPServers: servers}
	h := http.Header{}
	h.Set("Authorization", "Bearer general")
	h.Set("X-Tenant", "acme")
	h.Set("X-Mcp-Gh-X-Api-Key", "gh-key")
	h.Set("X-Mcp-Al-X-Trace", "via-alias")
	h.Set("X-Mcp-Gh-Ent-Authorization", "Bearer ent")         // server gh-ent, not gh's "ent-authorization"
	h.Set("X-Mcp-Keyed-Authorization", "Bearer must-not-go")  // a service credential's server: never
	h.Set("X-Mcp-Keyed-X-Api-Key", "must-not-override")       // its own credential's header: never
	h.Set("X-Mcp-Keyed-X-Static", "must-not-override-static") // its static header: never
	h.Set("X-Mcp-Keyed-X-Trace", "t-1")                       // any other: forwarded
	h.Set("X-Mcp-None-X-Trace", "t-2")                        // auth none: nothing
	h.Set("X-Mcp-Local-X-Api-Key", "local-key")               // a placeholder's value
	h.Set("X-Mcp-Local-X-Unused", "nowhere-to-go")            // stdio: only placeholders
	p, err := frontdoor.ReadPresented(h, cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		srv   string
		reach frontdoor.Reach
		want  map[string]string
	}{
		{"gh", frontdoor.Targeted, map[string]string{"authorization": "Bearer general", "x-api-key": "gh-key", "x-tenant": "acme"}},
		{"gh", frontdoor.FanOut, map[string]string{"x-api-key": "gh-key", "x-tenant": "acme"}},
		{"gh-ent", frontdoor.FanOut, map[string]string{"authorization": "Bearer ent"}},
		{"keyed", frontdoor.Targeted, map[string]string{"x-tenant": "acme", "x-trace": "t-1"}},
		{"none", frontdoor.Targeted, map[string]string{}},
		{"aliased", frontdoor.Targeted, map[string]string{"authorization": "Bearer general", "x-trace": "via-alias"}},
		{"local", frontdoor.Targeted, map[string]string{"authorization": "Bearer general", "x-api-key": "local-key", "x-tenant": "acme"}},
		{"local", frontdoor.FanOut, map[string]string{"x-api-key": "local-key", "x-tenant": "acme"}},
	} {
		if got := frontdoor.Credential(p, servers[tt.srv], tt.reach).Reveal(); !maps.Equal(got, tt.want) {
			t.Errorf("%s (reach %d): %v, want %v", tt.srv, tt.reach, got, tt.want)
		}
	}

	// The legacy header: the caller's credential for every passthrough
	// server, in place of Authorization; per-server headers win; renamed
	// by mcp_client_side_auth_header_name.
	for _, name := range []string{"", "X-My-Auth"} {
		cfg := &config.File{MCPServers: servers, GeneralSettings: config.GeneralSettings{MCPClientSideAuthHeaderName: name}}
		h := http.Header{}
		h.Set("Authorization", "Bearer general")
		h.Set(cmp.Or(name, "x-mcp-auth"), "Bearer legacy")
		h.Set("X-Mcp-Gh-Ent-Authorization", "Bearer ent")
		p, err := frontdoor.ReadPresented(h, cfg, false)
		if err != nil {
			t.Fatal(err)
		}
		for srv, want := range map[string]string{"gh": "Bearer legacy", "gh-ent": "Bearer ent", "keyed": ""} {
			if got := frontdoor.Credential(p, servers[srv], frontdoor.Targeted).Reveal()["authorization"]; got != want {
				t.Errorf("legacy header %q, %s: %q, want %q", name, srv, got, want)
			}
		}
	}
}

// A malformed credential header is a 400 that names the problem and never
// the value.
func TestReadPresented_RefusesMalformedHeaders(t *testing.T) {
	cfg := &config.File{MCPServers: map[string]*config.Server{"gh": {Name: "gh", ExtraHeaders: []string{"X-Tenant"}}}}
	const secret = "s3cr3t-value"
	for name, h := range map[string]http.Header{
		"no server part":        {"X-Mcp-Authorization": {secret}},
		"unknown server":        {"X-Mcp-Jira-Authorization": {secret}},
		"empty header name":     {"X-Mcp-Gh-": {secret}},
		"control character":     {"X-Mcp-Gh-X-Api-Key": {secret + "\x01"}},
		"CR LF":                 {"X-Mcp-Gh-X-Api-Key": {secret + "\r\nHost: evil"}},
		"DEL in Authorization":  {"Authorization": {"Bearer " + secret + "\x7f"}},
		"sent twice":            {"X-Mcp-Gh-Authorization": {secret, secret + "2"}},
		"Authorization twice":   {"Authorization": {secret, secret + "2"}},
		"hop-by-hop header":     {"X-Mcp-Gh-Transfer-Encoding": {"chunked"}},
		"host":                  {"X-Mcp-Gh-Host": {"evil.example"}},
		"content-length":        {"X-Mcp-Gh-Content-Length": {"0"}},
		"connection":            {"X-Mcp-Gh-Connection": {"close"}},
		"legacy with LF":        {"X-Mcp-Auth": {secret + "\n"}},
		"extra header with NUL": {"X-Tenant": {secret + "\x00"}},
	} {
		_, err := frontdoor.ReadPresented(h, cfg, false)
		if err == nil || err.Code != contracts.CodeInvalidRequest {
			t.Errorf("%s: %v, want invalid_request", name, err)
			continue
		}
		if strings.Contains(err.Message, secret) {
			t.Errorf("%s: the message quotes the value: %s", name, err.Message)
		}
	}
	// LiteLLM's own x-mcp-* headers name no server and are no credential.
	if _, err := frontdoor.ReadPresented(http.Header{"X-Mcp-Servers": {"gh"}, "X-Mcp-Access-Groups": {"a"}}, cfg, false); err != nil {
		t.Errorf("x-mcp-servers: %v", err)
	}
}
