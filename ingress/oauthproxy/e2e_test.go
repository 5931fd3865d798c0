package oauthproxy_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"

	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/contracts/telemetry"
	"github.com/toolbus/toolbus/ingress/internal/gatewaytest"
)

// The configured client the gateway is at the authorization server.
const (
	clientID     = "toolbus-gateway"
	clientSecret = "gateway-client-secret-6d1f"
)

// authServer is a real OpenID provider (zitadel/oidc's op with its example
// storage and login UI) on 127.0.0.1, recording the resource indicators it
// was sent.
type authServer struct {
	URL     string
	handler atomic.Pointer[http.Handler]

	mu        sync.Mutex
	resources []string // every resource parameter sent to /auth and /oauth/token
}

func startAuthServer(t *testing.T) *authServer {
	t.Helper()
	as := &authServer{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := as.handler.Load()
		if h == nil {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		if r.URL.Path == "/auth" || r.URL.Path == "/oauth/token" {
			_ = r.ParseForm()
			as.mu.Lock()
			as.resources = append(as.resources, r.Form.Get("resource"))
			as.mu.Unlock()
		}
		(*h).ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	as.URL = srv.URL
	return as
}

// serve starts the provider with clients.
func (as *authServer) serve(clients ...*storage.Client) {
	byID := map[string]*storage.Client{}
	for _, c := range clients {
		byID[c.GetID()] = c
	}
	store := storage.NewStorageWithClients(storage.NewUserStore(as.URL), byID)
	// The example OP logs every request through slog's default logger;
	// SetupServer makes the logger it is given the default.
	var h http.Handler = exampleop.SetupServer(as.URL, store, slog.New(slog.DiscardHandler), false)
	as.handler.Store(&h)
}

func (as *authServer) seenResources() []string {
	as.mu.Lock()
	defer as.mu.Unlock()
	return append([]string(nil), as.resources...)
}

// upstream is an mcp-go MCP server that accepts only tokens its
// authorization server's userinfo endpoint accepts, and that the test has
// not expired; it serves its RFC 9728 metadata naming that server.
type upstream struct {
	URL string

	mu      sync.Mutex
	expired map[string]bool
	seen    []string // Authorization of every tool call
}

func startUpstream(t *testing.T, issuer string) *upstream {
	t.Helper()
	up := &upstream{expired: map[string]bool{}}
	s := server.NewMCPServer("protected", "1.0.0")
	s.AddTool(mcp.NewTool("whoami"), func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		up.mu.Lock()
		up.seen = append(up.seen, req.Header.Get("Authorization"))
		up.mu.Unlock()
		return mcp.NewToolResultText("ok"), nil
	})
	mcpHandler := server.NewStreamableHTTPServer(s)
	var base string
	prm := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"resource": base + "/mcp", "authorization_servers": []string{issuer}})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-protected-resource/mcp", prm)
	mux.Handle("/mcp", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		authz := r.Header.Get("Authorization")
		if !up.valid(r.Context(), issuer, authz) {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", resource_metadata="`+base+`/.well-known/oauth-protected-resource/mcp"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		mcpHandler.ServeHTTP(w, r)
	}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	base = srv.URL
	up.URL = srv.URL + "/mcp"
	return up
}

// valid asks the authorization server's userinfo endpoint about authz.
func (up *upstream) valid(ctx context.Context, issuer, authz string) bool {
	token, ok := strings.CutPrefix(authz, "Bearer ")
	if !ok {
		return false
	}
	up.mu.Lock()
	gone := up.expired[token]
	up.mu.Unlock()
	if gone {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, contractstest.WaitTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, issuer+"/userinfo", nil)
	req.Header.Set("Authorization", authz)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (up *upstream) expire(token string) {
	up.mu.Lock()
	up.expired[token] = true
	up.mu.Unlock()
}

func (up *upstream) lastSeen() string {
	up.mu.Lock()
	defer up.mu.Unlock()
	if len(up.seen) == 0 {
		return ""
	}
	return up.seen[len(up.seen)-1]
}

// browse plays the user's browser: it follows the authorization redirects
// from authURL, signs in at the provider's login form (approving), and
// returns the query the client's redirect URI receives, and the code the
// upstream gave the gateway's /callback.
func browse(t *testing.T, authURL, redirectURI string) (got url.Values, upstreamCode string) {
	t.Helper()
	c := &http.Client{Timeout: contractstest.WaitTimeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	next, method, form := authURL, http.MethodGet, url.Values(nil)
	for range 12 {
		var resp *http.Response
		var err error
		if method == http.MethodPost {
			resp, err = c.PostForm(next, form)
		} else {
			resp, err = c.Get(next)
		}
		if err != nil {
			t.Fatalf("browsing %s: %v", next, err)
		}
		_ = resp.Body.Close()
		loc, err := resp.Location()
		if err != nil {
			t.Fatalf("%s answered %d without a redirect", next, resp.StatusCode)
		}
		if strings.HasPrefix(loc.String(), redirectURI) {
			return loc.Query(), upstreamCode
		}
		if loc.Path == "/callback" {
			upstreamCode = loc.Query().Get("code")
		}
		method, form, next = http.MethodGet, nil, loc.String()
		if loc.Path == "/login/username" {
			// The login form: approve as the example user.
			u := loc.Hostname()
			method, form = http.MethodPost, url.Values{
				"id": {loc.Query().Get("authRequestID")}, "username": {"test-user@" + u}, "password": {"verysecure"},
			}
			loc.RawQuery = ""
			next = loc.String()
		}
	}
	t.Fatal("the authorization did not come back to the client")
	return nil, ""
}

func TestOAuthProxy_MCPClientCompletesTheUpstreamFlow(t *testing.T) {
	as := startAuthServer(t)
	up := startUpstream(t, as.URL)
	tracing, err := telemetry.NewTracing(t.Context(), config.Tracing{}, telemetry.ServiceIngress)
	if err != nil {
		t.Fatal(err)
	}
	gatewaytest.StopAtEnd(t, tracing.Shutdown)
	g := gatewaytest.Start(t, gatewaytest.WithTelemetry(tracing), gatewaytest.WithConfig(func(f *config.File) {
		f.MCPServers["oauthy"] = &config.Server{URL: up.URL, Credentials: config.Credentials{
			AuthType: config.AuthTypeOAuth2, ClientID: clientID, ClientSecret: clientSecret,
			Scopes: []string{"openid", "offline_access"},
		}}
	}))
	g.RecordBus(t)
	// The gateway is a confidential web client whose one redirect URI is
	// its /callback.
	as.serve(storage.WebClient(clientID, clientSecret, g.URL+"/callback"))
	ctx := contractstest.Ctx(t)
	endpoint := g.URL + "/oauthy/mcp"
	prmURL := g.URL + "/.well-known/oauth-protected-resource/oauthy/mcp"

	// Unauthenticated: 401 with the gateway's own challenge.
	resp := gatewaytest.Do(t, http.MethodPost, endpoint, map[string]string{"x-litellm-key": gatewaytest.MasterKey, "Accept": "application/json, text/event-stream"},
		`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	if resp.Status != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `resource_metadata="`+prmURL+`"`) {
		t.Fatalf("no credential: got %d %q, want 401 naming %s", resp.Status, resp.Header.Get("WWW-Authenticate"), prmURL)
	}

	const redirectURI = "http://127.0.0.1:7777/callback"
	tokens := client.NewMemoryTokenStore()
	registered := "" // the client_id, once registered
	newClient := func() *client.Client { return startOAuthClient(t, ctx, endpoint, registered, redirectURI, tokens) }
	initialize := func(c *client.Client) error {
		_, err := c.Initialize(ctx, mcp.InitializeRequest{Params: mcp.InitializeParams{ProtocolVersion: "2025-11-25"}})
		return err
	}
	c := newClient()
	err = initialize(c)
	if !client.IsOAuthAuthorizationRequiredError(err) {
		t.Fatalf("initialize without a token: %v, want OAuth authorization required", err)
	}
	h := client.GetOAuthHandler(err)

	// Discovery and registration, through the gateway.
	meta, err := h.GetServerMetadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if meta.Issuer != g.URL+"/oauthy" || meta.AuthorizationEndpoint != g.URL+"/oauthy/authorize" || meta.TokenEndpoint != g.URL+"/oauthy/token" {
		t.Fatalf("metadata names %+v, want the gateway's endpoints", meta)
	}
	if err := h.RegisterClient(ctx, "e2e"); err != nil {
		t.Fatal(err)
	}
	if registered = h.GetClientID(); !strings.HasPrefix(registered, "tbc1.") {
		t.Fatalf("client_id %q is not one the gateway issued", registered)
	}

	// PKCE authorization, the user approving in the browser.
	verifier, _ := client.GenerateCodeVerifier()
	state, _ := client.GenerateState()
	authURL, err := h.GetAuthorizationURL(ctx, state, client.GenerateCodeChallenge(verifier))
	if err != nil {
		t.Fatal(err)
	}
	back, upstreamCode := browse(t, authURL, redirectURI)
	if back.Get("error") != "" || back.Get("code") == "" || back.Get("state") != state || back.Get("iss") != g.URL+"/oauthy" {
		t.Fatalf("the client's redirect got %v", back)
	}
	if upstreamCode == "" || back.Get("code") == upstreamCode {
		t.Fatal("the client received the upstream's code itself, not the gateway's sealed one")
	}
	if err := h.ProcessAuthorizationResponse(ctx, back.Get("code"), back.Get("state"), verifier); err != nil {
		t.Fatal(err)
	}
	first, err := tokens.GetToken(ctx)
	if err != nil || first.AccessToken == "" || first.RefreshToken == "" {
		t.Fatalf("token: %+v, %v", first, err)
	}

	// The call: the upstream sees exactly that token.
	c = newClient()
	if err := initialize(c); err != nil {
		t.Fatal(err)
	}
	call := func(c *client.Client) error {
		res, err := c.CallTool(ctx, mcp.CallToolRequest{Params: mcp.CallToolParams{Name: "whoami"}})
		if err == nil && res.IsError {
			err = errors.New("the call failed: " + res.Content[0].(mcp.TextContent).Text)
		}
		return err
	}
	if err := call(c); err != nil {
		t.Fatal(err)
	}
	if got := up.lastSeen(); got != "Bearer "+first.AccessToken {
		t.Fatalf("the upstream saw %q, want the client's token", got)
	}
	for i, r := range as.seenResources() {
		if r != up.URL {
			t.Errorf("request %d to the authorization server had resource %q, want the upstream's %q", i, r, up.URL)
		}
	}

	// Expiry: the upstream refuses the token; the gateway answers 401 with
	// its own challenge; the client refreshes through the gateway.
	up.expire(first.AccessToken)
	err = call(c)
	if !client.IsOAuthAuthorizationRequiredError(err) {
		t.Fatalf("a call with an expired token: %v, want OAuth authorization required", err)
	}
	if got := client.GetResourceMetadataURL(err); got != prmURL {
		t.Fatalf("the challenge names %q, want %q", got, prmURL)
	}
	resp = gatewaytest.Do(t, http.MethodPost, endpoint, map[string]string{
		"x-litellm-key": gatewaytest.MasterKey, "Authorization": "Bearer " + first.AccessToken,
		"Accept": "application/json, text/event-stream", "Content-Type": "application/json",
	}, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami"}}`)
	if ch := resp.Header.Get("WWW-Authenticate"); resp.Status != http.StatusUnauthorized ||
		!strings.Contains(ch, `error="invalid_token"`) || !strings.Contains(ch, prmURL) {
		t.Fatalf("an expired token: got %d %q, want 401 with the gateway's invalid_token challenge", resp.Status, ch)
	}
	stale := *first
	stale.ExpiresAt = time.Now().Add(-time.Minute) // the client's clock agrees
	if err := tokens.SaveToken(ctx, &stale); err != nil {
		t.Fatal(err)
	}
	if err := call(c); err != nil {
		c = newClient() // a client that re-initializes after a refused session
		if err := initialize(c); err != nil {
			t.Fatal(err)
		}
		if err := call(c); err != nil {
			t.Fatalf("the call after the refresh: %v", err)
		}
	}
	second, err := tokens.GetToken(ctx)
	if err != nil || second.AccessToken == first.AccessToken {
		t.Fatalf("no refreshed token: %v", err)
	}
	if got := up.lastSeen(); got != "Bearer "+second.AccessToken {
		t.Fatalf("after the refresh the upstream saw %q, want the refreshed token", got)
	}

	// Nothing secret in the logs, the metrics, on the bus in plaintext, or
	// in the gateway's error bodies.
	metrics := gatewaytest.Do(t, http.MethodGet, g.URL+"/metrics", nil, "")
	if metrics.Status != http.StatusOK || !strings.Contains(string(metrics.Body), "oauthy") {
		t.Fatalf("the ingress metrics (%d) do not show the OAuth routes' server: the check would be vacuous", metrics.Status)
	}
	for _, secret := range []string{first.AccessToken, first.RefreshToken, second.AccessToken, second.RefreshToken, upstreamCode, clientSecret} {
		if secret == "" {
			continue
		}
		g.AssertNoSecret(t, secret)
		if strings.Contains(string(resp.Body), secret) {
			t.Errorf("an error body holds a secret")
		}
		if strings.Contains(string(metrics.Body), secret) {
			t.Errorf("the metrics hold a secret")
		}
	}
}
