package config

import (
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// LiteLLM's MCP OBO documentation config, as printed there.
const liteLLMOBODocs = `
mcp_servers:
  internal_tools:
    url: "https://mcp.example.com/mcp"
    transport: "http"
    auth_type: oauth2_token_exchange
    token_exchange_endpoint: "https://idp.example.com/oauth2/token"
    client_id: "<idp-client-id>"
    client_secret: "<idp-client-secret>"
    audience: "api://internal-tools-mcp"
    scopes:
      - "mcp.tools.read"
      - "mcp.tools.execute"
    subject_token_type: "urn:ietf:params:oauth:token-type:access_token"
  defaults:
    url: "https://mcp.example.com/mcp"
    auth_type: oauth2_token_exchange
    token_exchange_endpoint: "https://idp.example.com/oauth2/token"
    client_id: c
    resource: "https://mcp.example.com/mcp"
`

func TestTokenExchange_LiteLLMDocumentationConfig(t *testing.T) {
	f, warns, err := Parse([]byte(liteLLMOBODocs), Options{Strict: true})
	if err != nil || len(warns) != 0 {
		t.Fatalf("%v %v", err, warns)
	}
	s := f.MCPServers["internal_tools"]
	if !s.ReceivesCaller() || !s.ExchangesCaller() || s.HasServiceCredential() {
		t.Errorf("receives caller %v, exchanges %v, service credential %v", s.ReceivesCaller(), s.ExchangesCaller(), s.HasServiceCredential())
	}
	if s.TokenExchangeEndpoint != "https://idp.example.com/oauth2/token" || s.Audience != "api://internal-tools-mcp" ||
		!slices.Equal(s.Scopes, []string{"mcp.tools.read", "mcp.tools.execute"}) || s.ClientSecret != "<idp-client-secret>" {
		t.Errorf("not read: %+v", s.Credentials)
	}
	if d := f.MCPServers["defaults"]; d.SubjectTokenType != DefaultSubjectTokenType || d.Resource == "" {
		t.Errorf("defaults: %+v", d.Credentials)
	}
}

func TestOIDC_SectionDefaults(t *testing.T) {
	f, warns, err := Parse([]byte(`
mcp_servers:
  jira: {url: "http://127.0.0.1:1/mcp"}
  github: {url: "http://127.0.0.1:2/mcp"}
ingress:
  public_url: https://gw.example.com
oidc:
  - issuer: https://login.example.com/realms/acme
    audience: toolbus
    servers: [jira]
    tools: [create_issue]
    servers_claim: mcp_servers
`), Options{Strict: true})
	if err != nil || len(warns) != 0 {
		t.Fatalf("%v %v", err, warns)
	}
	o := f.OIDC[0]
	if !slices.Equal(o.Algorithms, OIDCAlgorithms) || o.SubjectClaim != "sub" || o.Leeway.D() != DefaultOIDCLeeway ||
		o.RefreshInterval.D() != DefaultOIDCRefreshInterval || o.JWKSURL != "" {
		t.Errorf("defaults: %+v", o)
	}
	if !slices.Equal(o.Tools, []string{"jira-create_issue"}) {
		t.Errorf("tools resolved to %v", o.Tools)
	}
	if f.Ingress.PublicURL != "https://gw.example.com" {
		t.Errorf("public_url %q", f.Ingress.PublicURL)
	}
}

func TestOIDC_BadInputIsAStartUpError(t *testing.T) {
	const srv = "mcp_servers:\n  s: {url: \"http://127.0.0.1:1/mcp\"}\n"
	for _, tc := range []struct{ name, yaml, want string }{
		{"no audience", srv + "oidc: [{issuer: \"https://i.example\"}]", "oidc[0].audience: required"},
		{"no issuer", srv + "oidc: [{audience: a}]", "oidc[0].issuer: an http(s) URL is required"},
		{"http issuer not on loopback", srv + "oidc: [{issuer: \"http://i.example\", audience: a}]", "https is required"},
		{"HMAC algorithm", srv + "oidc: [{issuer: \"https://i.example\", audience: a, algorithms: [HS256]}]", `"HS256" is not one of`},
		{"alg none", srv + "oidc: [{issuer: \"https://i.example\", audience: a, algorithms: [none]}]", `"none" is not one of`},
		{"unknown server", srv + "oidc: [{issuer: \"https://i.example\", audience: a, servers: [nope]}]", `oidc[0].servers: unknown server "nope"`},
		{"unknown access group", srv + "oidc: [{issuer: \"https://i.example\", audience: a, access_groups: [nope]}]", `oidc[0].access_groups: no server declares the access group "nope"`},
		{"empty servers", srv + "oidc: [{issuer: \"https://i.example\", audience: a, servers: []}]", `is not "every one"`},
		{"empty tools", srv + "oidc: [{issuer: \"https://i.example\", audience: a, tools: []}]", `is not "every one"`},
		{"twice", srv + "oidc: [{issuer: \"https://i.example\", audience: a}, {issuer: \"https://i.example\", audience: a}]", "configured twice"},
		{"bad jwks_url", srv + "oidc: [{issuer: \"https://i.example\", audience: a, jwks_url: \"file:///etc/passwd\"}]", "oidc[0].jwks_url"},
		{"leeway too long", srv + "oidc: [{issuer: \"https://i.example\", audience: a, leeway: 1h}]", "oidc[0].leeway"},
		{"bad public_url", srv + "ingress: {public_url: \"gw.example\"}", "ingress.public_url"},
		{"exchange without endpoint", "mcp_servers:\n  s: {url: \"http://h/mcp\", auth_type: oauth2_token_exchange, client_id: c, audience: a}", "mcp_servers.s.token_exchange_endpoint: an http(s) URL is required"},
		{"exchange without client_id", "mcp_servers:\n  s: {url: \"http://h/mcp\", auth_type: oauth2_token_exchange, token_exchange_endpoint: \"http://t/token\", audience: a}", "mcp_servers.s.client_id: required"},
		{"exchange without audience or resource", "mcp_servers:\n  s: {url: \"http://h/mcp\", auth_type: oauth2_token_exchange, token_exchange_endpoint: \"http://t/token\", client_id: c}", "needs audience or resource"},
		{"exchange on stdio", "mcp_servers:\n  s: {command: x, auth_type: oauth2_token_exchange, token_exchange_endpoint: \"http://t/token\", client_id: c, audience: a}", "a stdio server cannot use auth_type oauth2_token_exchange"},
		{"exchange keys on another auth_type", "mcp_servers:\n  s: {url: \"http://h/mcp\", audience: a}", "only for auth_type oauth2_token_exchange"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode([]byte(tc.yaml), yaml.Unmarshal)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}
