package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/ingress/devmode"
	"github.com/toolbus/toolbus/ingress/internal/gatewaytest"
	"github.com/toolbus/toolbus/ingress/internal/oidctest"
)

const oidcAudience = "toolbus-gateway"

// startOIDCGateway is the test gateway accepting the issuer is's tokens
// for oidcAudience, each token's servers listed in its mcp_servers claim.
func startOIDCGateway(t *testing.T, is *oidctest.Issuer) *gateway {
	return startGateway(t, func(c *config.File) {
		c.OIDC = []config.OIDCIssuer{{Issuer: is.URL, Audience: oidcAudience, ServersClaim: "mcp_servers"}}
	})
}

func bearerOf(tok string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + tok}
}

// With an OIDC issuer configured, a JWT access token of it is a caller on
// the REST API and /mcp, allowed the servers its claim lists; a
// passthrough server receives that token, nothing else of it crosses NATS
// in plaintext; a refused token is 401 with the resource-metadata
// challenge.
func TestOIDC_CallerThroughTheGateway(t *testing.T) {
	is := oidctest.Start(t)
	g := startOIDCGateway(t, is)
	tok := is.Token(t, oidcAudience, "alice", map[string]any{"mcp_servers": []string{"demo"}})

	// REST: the claim's server works, the caller's JWT reaches it (a
	// passthrough server), another server is forbidden.
	resp := g.do(t, http.MethodPost, "/mcp-rest/tools/call", bearerOf(tok), `{"name":"whoami","server_id":"demo","arguments":{}}`)
	if resp.Status != http.StatusOK || resp.Text(t) != "Bearer "+tok {
		t.Fatalf("whoami: %d %s", resp.Status, resp.Body)
	}
	if resp := g.do(t, http.MethodPost, "/mcp-rest/tools/call", bearerOf(tok), `{"name":"echo","server_id":"other","arguments":{"text":"x"}}`); resp.Status != http.StatusForbidden {
		t.Fatalf("a server outside the claim: %d %s", resp.Status, resp.Body)
	}
	resp = g.do(t, http.MethodGet, "/mcp-rest/tools/list", bearerOf(tok), "")
	if resp.Status != http.StatusOK || strings.Contains(string(resp.Body), `"other-`) {
		t.Fatalf("list: %d %s", resp.Status, resp.Body)
	}

	// /mcp with only the JWT: initialize, list, call.
	c, err := client.NewStreamableHttpClient(g.URL+"/mcp", transport.WithHTTPHeaders(bearerOf(tok)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx := contractstest.Ctx(t)
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	init := mcp.InitializeRequest{}
	init.Params.ClientInfo = mcp.Implementation{Name: "oidc-test", Version: "0"}
	if _, err := c.Initialize(ctx, init); err != nil {
		t.Fatalf("initialize: %v", err)
	}
	tools, err := c.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil || len(tools.Tools) == 0 {
		t.Fatalf("tools/list: %v", err)
	}
	for _, tool := range tools.Tools {
		if !strings.HasPrefix(tool.Name, "demo-") {
			t.Errorf("tool %s of a server outside the claim is listed", tool.Name)
		}
	}
	call := mcp.CallToolRequest{}
	call.Params.Name, call.Params.Arguments = "demo-echo", map[string]any{"text": "hi"}
	g.RecordBus(t)
	if res, err := c.CallTool(ctx, call); err != nil || res.IsError {
		t.Fatalf("tools/call: %v %+v", err, res)
	}
	g.AssertNoSecret(t, tok)

	// Refused tokens: 401 with the challenge naming the metadata.
	wantChallenge := `Bearer resource_metadata="` + g.URL + `/.well-known/oauth-protected-resource/mcp"`
	for name, h := range map[string]map[string]string{
		"no credential":     {},
		"wrong audience":    bearerOf(is.Token(t, "another-api", "alice", nil)),
		"another issuer":    bearerOf(oidctest.Start(t).Token(t, oidcAudience, "alice", nil)),
		"not a JWT":         {"Authorization": "Bearer opaque-user-token"},
		"wrong gateway key": {"x-litellm-key": "sk-wrong", "Authorization": "Bearer " + tok},
	} {
		resp := g.do(t, http.MethodPost, "/mcp", h, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
		if resp.Status != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), wantChallenge) {
			t.Errorf("%s: %d, WWW-Authenticate %q", name, resp.Status, resp.Header.Get("WWW-Authenticate"))
		}
		if strings.Contains(string(resp.Body), tok) {
			t.Errorf("%s: the token is in the error body", name)
		}
	}
	// A REST path's challenge names the whole gateway's metadata.
	resp = g.do(t, http.MethodGet, "/mcp-rest/tools/list", nil, "")
	if want := `Bearer resource_metadata="` + g.URL + `/.well-known/oauth-protected-resource"`; resp.Status != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != want {
		t.Errorf("REST: %d, WWW-Authenticate %q", resp.Status, resp.Header.Get("WWW-Authenticate"))
	}
	// A gateway key still works, and a key caller is not an OIDC caller.
	if resp := g.call(t, "", "demo-echo", `{"text":"k"}`); resp.Status != http.StatusOK {
		t.Fatalf("gateway key: %d %s", resp.Status, resp.Body)
	}
}

// The protected-resource metadata (RFC 9728) of /mcp and of the gateway
// name the configured issuer; without OIDC there is neither document nor
// challenge.
func TestOIDC_ProtectedResourceMetadata(t *testing.T) {
	is := oidctest.Start(t)
	g := startOIDCGateway(t, is)
	for path, resource := range map[string]string{
		"/.well-known/oauth-protected-resource/mcp": g.URL + "/mcp",
		"/.well-known/oauth-protected-resource":     g.URL,
	} {
		resp := g.do(t, http.MethodGet, path, nil, "")
		var doc struct {
			Resource             string   `json:"resource"`
			AuthorizationServers []string `json:"authorization_servers"`
			BearerMethods        []string `json:"bearer_methods_supported"`
		}
		if resp.Status != http.StatusOK || json.Unmarshal(resp.Body, &doc) != nil {
			t.Fatalf("%s: %d %s", path, resp.Status, resp.Body)
		}
		if doc.Resource != resource || !slices.Equal(doc.AuthorizationServers, []string{is.URL}) || !slices.Equal(doc.BearerMethods, []string{"header"}) {
			t.Errorf("%s: %+v", path, doc)
		}
	}

	plain := startGateway(t)
	if resp := plain.do(t, http.MethodGet, "/.well-known/oauth-protected-resource/mcp", nil, ""); resp.Status != http.StatusNotFound {
		t.Errorf("without OIDC: %d", resp.Status)
	}
	if resp := plain.do(t, http.MethodPost, "/mcp", nil, `{}`); resp.Status != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != "" {
		t.Errorf("without OIDC: %d, WWW-Authenticate %q", resp.Status, resp.Header.Get("WWW-Authenticate"))
	}
}

// Two subjects of one issuer are two callers: a job one submits is not the
// other's.
func TestOIDC_SubjectsOwnTheirJobs(t *testing.T) {
	is := oidctest.Start(t)
	g := startOIDCGateway(t, is)
	claims := map[string]any{"mcp_servers": []string{"demo"}}
	alice, bob := bearerOf(is.Token(t, oidcAudience, "alice", claims)), bearerOf(is.Token(t, oidcAudience, "bob", claims))
	resp := g.do(t, http.MethodPost, "/v1/calls", alice, `{"name":"demo-echo","arguments":{"text":"mine"}}`)
	if resp.Status != http.StatusAccepted {
		t.Fatalf("submit: %d %s", resp.Status, resp.Body)
	}
	id, _ := resp.JSON(t)["id"].(string)
	if id == "" {
		t.Fatalf("no job id: %s", resp.Body)
	}
	if resp := g.do(t, http.MethodGet, "/v1/calls/"+id, bob, ""); resp.Status != http.StatusNotFound {
		t.Errorf("another subject read the job: %d %s", resp.Status, resp.Body)
	}
	if resp := g.do(t, http.MethodGet, "/v1/calls/"+id, alice, ""); resp.Status != http.StatusOK {
		t.Errorf("its owner: %d %s", resp.Status, resp.Body)
	}
	// A refreshed token of the same subject is the same caller.
	refreshed := bearerOf(is.Token(t, oidcAudience, "alice", map[string]any{"mcp_servers": []string{"demo"}, "jti": "refreshed"}))
	if refreshed["Authorization"] == alice["Authorization"] {
		t.Fatal("the refreshed token is the same token")
	}
	if resp := g.do(t, http.MethodGet, "/v1/calls/"+id, refreshed, ""); resp.Status != http.StatusOK {
		t.Errorf("its owner with a refreshed token: %d %s", resp.Status, resp.Body)
	}
}

// The whole picture: an OIDC caller (only its JWT) calls a token-exchange
// server. The STS (zitadel's provider, trusting the issuer) exchanges the
// JWT; the server sees only the exchanged token, also on the aggregated
// tools/list (fan-out); the JWT and the exchanged token cross NATS only
// sealed.
func TestOIDC_CallerTokenExchanged(t *testing.T) {
	is := oidctest.Start(t)
	key := is.Keys()[0].Public()
	sts := contractstest.StartSTS(t, func(tok string) (string, bool) {
		parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS256})
		var c jwt.Claims
		if err != nil || parsed.Claims(key.Key, &c) != nil || c.Issuer != is.URL {
			return "", false
		}
		return c.Subject, true
	})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	obo, err := devmode.StartDemo(ctx, devmode.DemoOptions{}, devmode.DemoHTTP)
	if err != nil {
		t.Fatal(err)
	}
	gatewaytest.StopAtEnd(t, obo.Close)
	g := startGateway(t, func(c *config.File) {
		c.OIDC = []config.OIDCIssuer{{Issuer: is.URL, Audience: oidcAudience, Servers: []string{"obo", "demo"}}}
		c.MCPServers["obo"] = &config.Server{URL: obo.URL, Credentials: config.Credentials{
			AuthType: config.AuthTypeOAuth2TokenExchange, TokenExchangeEndpoint: sts.TokenURL,
			ClientID: contractstest.STSClientID, ClientSecret: contractstest.STSClientSecret, Audience: "api://obo"}}
	})
	tok := is.Token(t, oidcAudience, "alice", nil)
	resp := g.do(t, http.MethodPost, "/mcp-rest/tools/call", bearerOf(tok), `{"name":"whoami","server_id":"obo","arguments":{}}`)
	if resp.Status != http.StatusOK {
		t.Fatalf("whoami: %d %s", resp.Status, resp.Body)
	}
	exchanged := resp.Text(t)
	if !strings.HasPrefix(exchanged, "Bearer ") || strings.Contains(exchanged, tok) {
		t.Fatalf("the server saw %q", exchanged)
	}
	if ex := sts.Exchanges(); len(ex) != 1 || ex[0].Subject != "alice" || !slices.Equal(ex[0].Audience, []string{"api://obo"}) {
		t.Fatalf("exchanges %+v", ex)
	}
	// The aggregated list reaches obo with the exchanged token too.
	obo.Recorder.Reset()
	g.RecordBus(t)
	resp = g.do(t, http.MethodGet, "/mcp-rest/tools/list", bearerOf(tok), "")
	if resp.Status != http.StatusOK || !strings.Contains(string(resp.Body), `"server_name":"obo"`) {
		t.Fatalf("list: %d %s", resp.Status, resp.Body)
	}
	if resp := g.do(t, http.MethodPost, "/mcp-rest/tools/call", bearerOf(tok), `{"name":"echo","server_id":"obo","arguments":{"text":"x"}}`); resp.Status != http.StatusOK {
		t.Fatalf("echo: %d %s", resp.Status, resp.Body)
	}
	seen := obo.Recorder.Authorizations()
	if len(seen) == 0 {
		t.Fatal("obo recorded no request")
	}
	for _, got := range seen {
		if got != exchanged {
			t.Fatalf("the server saw %q, want the exchanged token", got)
		}
	}
	if n := len(sts.Exchanges()); n != 1 {
		t.Errorf("%d exchanges for one caller token, want 1 (cached)", n)
	}
	// A caller token the STS refuses: 401 upstream_unauthorized, naming
	// the subject token, and nothing reaches the server.
	obo.Recorder.Reset()
	resp = g.do(t, http.MethodPost, "/mcp-rest/tools/call", gatewaytest.Headers(masterKey, "Bearer not-a-token-the-sts-takes"),
		`{"name":"echo","server_id":"obo","arguments":{"text":"x"}}`)
	if resp.Status != http.StatusUnauthorized || resp.ErrorCode(t) != "upstream_unauthorized" || !strings.Contains(string(resp.Body), "subject_token") {
		t.Fatalf("refused subject token: %d %s", resp.Status, resp.Body)
	}
	if strings.Contains(string(resp.Body), "not-a-token-the-sts-takes") || len(obo.Recorder.Authorizations()) != 0 {
		t.Fatal("the refused token is in the body, or the server was called")
	}
	g.AssertNoSecret(t, tok)
	g.AssertNoSecret(t, strings.TrimPrefix(exchanged, "Bearer "))
	g.AssertNoSecret(t, contractstest.STSClientSecret)
}
