package oauthproxy_test

import (
	"context"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/zitadel/oidc/v3/example/server/storage"

	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/ingress/internal/gatewaytest"
)

// startOAuthClient starts mcp-go's OAuth client of endpoint with the
// gateway key, keeping its tokens in tokens; it is closed with the test.
func startOAuthClient(t *testing.T, ctx context.Context, endpoint, clientID, redirectURI string, tokens client.TokenStore) *client.Client {
	t.Helper()
	c, err := client.NewOAuthStreamableHttpClient(endpoint, client.OAuthConfig{
		ClientID: clientID, RedirectURI: redirectURI, TokenStore: tokens, PKCEEnabled: true,
	}, transport.WithHTTPHeaders(map[string]string{"x-litellm-key": gatewaytest.MasterKey}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

// connect runs an MCP client's whole flow against endpoint: the 401,
// discovery, registration (unless clientID is preset), PKCE authorization
// through browse (authURL first passed through rewrite), the token, and
// a whoami call. It returns the client's token.
func connect(t *testing.T, ctx context.Context, endpoint, clientID, redirectURI string, rewrite func(string) string) *client.Token {
	t.Helper()
	tokens := client.NewMemoryTokenStore()
	c := startOAuthClient(t, ctx, endpoint, clientID, redirectURI, tokens)
	initReq := mcp.InitializeRequest{Params: mcp.InitializeParams{ProtocolVersion: "2025-11-25"}}
	_, err := c.Initialize(ctx, initReq)
	if !client.IsOAuthAuthorizationRequiredError(err) {
		t.Fatalf("initialize without a token: %v, want OAuth authorization required", err)
	}
	h := client.GetOAuthHandler(err)
	if clientID == "" {
		if err := h.RegisterClient(ctx, "e2e"); err != nil {
			t.Fatal(err)
		}
	}
	verifier, _ := client.GenerateCodeVerifier()
	state, _ := client.GenerateState()
	authURL, err := h.GetAuthorizationURL(ctx, state, client.GenerateCodeChallenge(verifier))
	if err != nil {
		t.Fatal(err)
	}
	back, _ := browse(t, rewrite(authURL), redirectURI)
	if back.Get("error") != "" || back.Get("state") != state {
		t.Fatalf("the client's redirect got %v", back)
	}
	if err := h.ProcessAuthorizationResponse(ctx, back.Get("code"), back.Get("state"), verifier); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Initialize(ctx, initReq); err != nil {
		t.Fatal(err)
	}
	res, err := c.CallTool(ctx, mcp.CallToolRequest{Params: mcp.CallToolParams{Name: "whoami"}})
	if err != nil || res.IsError {
		t.Fatalf("the call: %v %+v", err, res)
	}
	tok, err := tokens.GetToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// A public configured client (client_id, no client_secret): the sealing key
// is the replicas' shared one in NATS KV, so one replica registers and
// takes the callback and the token request while another answers the
// authorization request.
func TestOAuthProxy_AnyReplicaAnswersAnyStep(t *testing.T) {
	as := startAuthServer(t)
	up := startUpstream(t, as.URL)
	g := gatewaytest.Start(t, gatewaytest.WithConfig(func(f *config.File) {
		f.MCPServers["oauthy"] = &config.Server{URL: up.URL, Credentials: config.Credentials{
			AuthType: config.AuthTypeOAuth2, OAuth2Flow: config.OAuth2AuthorizationCode, ClientID: "toolbus-public",
			Scopes: []string{"openid"},
		}}
	}))
	other := g.NewIngress(t, func(in *config.Ingress) { in.PublicURL = g.URL })
	as.serve(storage.NativeClient("toolbus-public", g.URL+"/callback"))
	ctx := contractstest.Ctx(t)

	var onOther bool
	tok := connect(t, ctx, g.URL+"/oauthy/mcp", "", "http://127.0.0.1:7777/callback", func(authURL string) string {
		onOther = strings.HasPrefix(authURL, g.URL+"/oauthy/authorize")
		return other.URL + strings.TrimPrefix(authURL, g.URL)
	})
	if !onOther {
		t.Fatal("the authorization request did not go to the other replica")
	}
	if got := up.lastSeen(); got != "Bearer "+tok.AccessToken {
		t.Fatalf("the upstream saw %q, want the client's token", got)
	}
}

// Without a configured client the gateway is a pure proxy: the client
// uses its own client of the upstream's authorization server (here
// pre-registered: zitadel's provider has no dynamic registration), whose
// redirect comes straight back to it; the gateway only rewrites the
// resource indicator.
func TestOAuthProxy_PassThroughToTheUpstreamsServer(t *testing.T) {
	as := startAuthServer(t)
	up := startUpstream(t, as.URL)
	g := gatewaytest.Start(t, gatewaytest.WithConfig(func(f *config.File) {
		f.MCPServers["oauthy"] = &config.Server{URL: up.URL, Credentials: config.Credentials{
			AuthType: config.AuthTypeOAuth2, Scopes: []string{"openid"},
		}}
	}))
	const redirectURI = "http://127.0.0.1:7777/callback"
	as.serve(storage.NativeClient("mcp-client", redirectURI))
	ctx := contractstest.Ctx(t)

	var upstreamAuth bool
	tok := connect(t, ctx, g.URL+"/oauthy/mcp", "mcp-client", redirectURI, func(authURL string) string { return authURL })
	if got := up.lastSeen(); got != "Bearer "+tok.AccessToken {
		t.Fatalf("the upstream saw %q, want the client's token", got)
	}
	for i, r := range as.seenResources() {
		if r != up.URL {
			t.Errorf("request %d to the authorization server had resource %q, want the upstream's %q", i, r, up.URL)
		}
		upstreamAuth = true
	}
	if !upstreamAuth {
		t.Fatal("the authorization server saw no request")
	}
	// LiteLLM's path form /mcp/<server> has its own resource.
	resp := gatewaytest.Do(t, "POST", g.URL+"/mcp/oauthy", map[string]string{"x-litellm-key": gatewaytest.MasterKey, "Accept": "application/json, text/event-stream"},
		`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	alt := g.URL + "/.well-known/oauth-protected-resource/mcp/oauthy"
	if resp.Status != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `resource_metadata="`+alt+`"`) {
		t.Fatalf("/mcp/oauthy without a token: %d %q", resp.Status, resp.Header.Get("WWW-Authenticate"))
	}
	if doc := gatewaytest.Do(t, "GET", alt, nil, "").JSON(t); doc["resource"] != g.URL+"/mcp/oauthy" {
		t.Fatalf("the path form's metadata: %v", doc)
	}
	// The gateway's metadata offers no registration: the upstream has none.
	resp = gatewaytest.Do(t, "GET", g.URL+"/.well-known/oauth-authorization-server/oauthy", nil, "")
	if doc := resp.JSON(t); resp.Status != 200 || doc["registration_endpoint"] != nil || doc["issuer"] != g.URL+"/oauthy" {
		t.Fatalf("metadata: %d %v", resp.Status, doc)
	}
}

// A server named by its alias in the URL (/<alias>/mcp) has its resource
// under that name: the challenge and the metadata name the URL the client
// used, which strict clients (mcp-go's among them) require, and the token
// requested for it is the server's.
func TestOAuthProxy_ServerReachedByItsAlias(t *testing.T) {
	as := startAuthServer(t)
	up := startUpstream(t, as.URL)
	g := gatewaytest.Start(t, gatewaytest.WithConfig(func(f *config.File) {
		f.MCPServers["oauthy"] = &config.Server{URL: up.URL, Alias: "oa", Credentials: config.Credentials{
			AuthType: config.AuthTypeOAuth2, Scopes: []string{"openid"},
		}}
	}))
	const redirectURI = "http://127.0.0.1:7777/callback"
	as.serve(storage.NativeClient("mcp-client", redirectURI))
	ctx := contractstest.Ctx(t)

	resp := gatewaytest.Do(t, "POST", g.URL+"/oa/mcp", map[string]string{"x-litellm-key": gatewaytest.MasterKey, "Accept": "application/json, text/event-stream"},
		`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	meta := g.URL + "/.well-known/oauth-protected-resource/oa/mcp"
	if resp.Status != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `resource_metadata="`+meta+`"`) {
		t.Fatalf("/oa/mcp without a token: %d %q", resp.Status, resp.Header.Get("WWW-Authenticate"))
	}
	tok := connect(t, ctx, g.URL+"/oa/mcp", "mcp-client", redirectURI, func(authURL string) string { return authURL })
	if got := up.lastSeen(); got != "Bearer "+tok.AccessToken {
		t.Fatalf("the upstream saw %q, want the client's token", got)
	}
}
