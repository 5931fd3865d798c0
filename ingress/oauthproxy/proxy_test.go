package oauthproxy

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
)

// newTestProxy serves a proxy for the one server srv (named "s") on
// 127.0.0.1, with an abort that maps the codes it uses.
func newTestProxy(t *testing.T, srv *config.Server) (*Proxy, string) {
	t.Helper()
	srv.Name = "s"
	cfg := &config.File{MCPServers: map[string]*config.Server{"s": srv}}
	p := New(Options{Config: cfg, Logger: zerolog.Nop()})
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	p.Mount(r, func(c *gin.Context, e *contracts.Error) {
		status := map[contracts.ErrorCode]int{contracts.CodeNotFound: 404, contracts.CodeUpstreamAuthFailed: 502}[e.Code]
		if status == 0 {
			status = 500
		}
		c.AbortWithStatusJSON(status, gin.H{"error": e})
	})
	ts := httptest.NewServer(r)
	t.Cleanup(ts.Close)
	return p, ts.URL
}

type result struct {
	status int
	header http.Header
	body   map[string]any
}

// send makes one request without following redirects.
func send(t *testing.T, method, u string, form url.Values) result {
	t.Helper()
	c := &http.Client{Timeout: contractstest.WaitTimeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var resp *http.Response
	var err error
	switch {
	case method == http.MethodPost && form != nil:
		resp, err = c.PostForm(u, form)
	default:
		var req *http.Request
		req, err = http.NewRequest(method, u, nil)
		if err == nil {
			resp, err = c.Do(req)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return result{resp.StatusCode, resp.Header, body}
}

func postJSON(t *testing.T, u string, v any) result {
	t.Helper()
	b, _ := json.Marshal(v)
	resp, err := (&http.Client{Timeout: contractstest.WaitTimeout}).Post(u, "application/json", strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return result{resp.StatusCode, resp.Header, body}
}

func errorCode(r result) string {
	if e, ok := r.body["error"].(map[string]any); ok {
		s, _ := e["code"].(string)
		return s
	}
	s, _ := r.body["error"].(string)
	return s
}

func TestDiscovery_UnavailableAuthorizationServerIsAClearError(t *testing.T) {
	t.Run("unreachable", func(t *testing.T) {
		_, base := newTestProxy(t, &config.Server{URL: "http://127.0.0.1:1/mcp", Credentials: config.Credentials{AuthType: "oauth2"}})
		r := send(t, http.MethodGet, base+"/.well-known/oauth-authorization-server/s", nil)
		if r.status != http.StatusBadGateway || errorCode(r) != string(contracts.CodeUpstreamAuthFailed) {
			t.Fatalf("got %d %v, want 502 upstream_auth_failed", r.status, r.body)
		}
		if e := r.body["error"].(map[string]any); e["retryable"] != true || !strings.Contains(e["message"].(string), "the authorization server of s is unavailable") {
			t.Fatalf("error %v", e)
		}
	})
	t.Run("hanging", func(t *testing.T) {
		var hits atomic.Int64
		release := make(chan struct{})
		hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}))
		t.Cleanup(hang.Close)
		t.Cleanup(func() { close(release) }) // runs first
		p, base := newTestProxy(t, &config.Server{URL: hang.URL + "/mcp", Credentials: config.Credentials{AuthType: "oauth2"}})
		p.disc.timeout = 50 * time.Millisecond
		r := send(t, http.MethodPost, base+"/s/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"r"}})
		if r.status != http.StatusBadGateway || errorCode(r) != string(contracts.CodeUpstreamAuthFailed) {
			t.Fatalf("got %d %v, want 502 upstream_auth_failed", r.status, r.body)
		}
		// The failure is remembered for a while: no new fetch.
		before := hits.Load()
		if r := send(t, http.MethodGet, base+"/s/authorize?response_type=code", nil); r.status != http.StatusBadGateway {
			t.Fatalf("second request: %d", r.status)
		}
		if hits.Load() != before {
			t.Error("a failed discovery was retried at once")
		}
	})
}

// fakeUpstream is an MCP server's metadata and its authorization server's,
// on one origin, counting fetches; failing makes every answer 500.
type fakeUpstream struct {
	*httptest.Server
	prmHits atomic.Int64
	failing atomic.Bool
	issuer  atomic.Value // the issuer the AS metadata declares

	mu         sync.Mutex
	registered []map[string]any // bodies received by its registration endpoint
}

func startFakeUpstream(t *testing.T) *fakeUpstream {
	f := &fakeUpstream{}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/oauth-protected-resource/mcp", func(w http.ResponseWriter, r *http.Request) {
		f.prmHits.Add(1)
		if f.failing.Load() {
			w.WriteHeader(500)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"resource": f.URL + "/mcp", "authorization_servers": []string{f.URL + "/as"}})
	})
	mux.HandleFunc("/.well-known/oauth-authorization-server/as", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": f.issuer.Load(), "authorization_endpoint": f.URL + "/as/authorize", "token_endpoint": f.URL + "/as/token",
			"registration_endpoint": f.URL + "/as/register",
		})
	})
	mux.HandleFunc("POST /as/register", func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		f.mu.Lock()
		f.registered = append(f.registered, body)
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{"client_id": "upstream-client", "redirect_uris": body["redirect_uris"]})
	})
	f.Server = httptest.NewServer(mux)
	f.issuer.Store(f.URL + "/as")
	t.Cleanup(f.Close)
	return f
}

func TestDiscovery_CachesRefreshesAndKeepsStaleMetadata(t *testing.T) {
	f := startFakeUpstream(t)
	d := newDiscovery(newClient())
	now := time.Now()
	var mu sync.Mutex
	d.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(by time.Duration) { mu.Lock(); now = now.Add(by); mu.Unlock() }
	srv := &config.Server{Name: "s", URL: f.URL + "/mcp", Credentials: config.Credentials{AuthType: "oauth2"}}
	ctx := contractstest.Ctx(t)

	as, err := d.get(ctx, srv)
	if err != nil || as.TokenEndpoint != f.URL+"/as/token" || as.Resource != f.URL+"/mcp" || as.Issuer != f.URL+"/as" {
		t.Fatalf("got %+v, %v", as, err)
	}
	if _, err := d.get(ctx, srv); err != nil || f.prmHits.Load() != 1 {
		t.Fatalf("a fresh entry was fetched again (%d fetches, %v)", f.prmHits.Load(), err)
	}
	advance(metadataTTL + time.Second)
	if _, err := d.get(ctx, srv); err != nil || f.prmHits.Load() != 2 {
		t.Fatalf("an expired entry was not refreshed (%d fetches, %v)", f.prmHits.Load(), err)
	}
	f.failing.Store(true)
	advance(metadataTTL + time.Second)
	if as, err := d.get(ctx, srv); err != nil || as.TokenEndpoint != f.URL+"/as/token" {
		t.Fatalf("a failed refresh did not keep the last metadata: %v", err)
	}
	advance(staleFor)
	if _, err := d.get(ctx, srv); err == nil {
		t.Fatal("metadata older than staleFor is still used")
	}
}

func TestDiscovery_IssuerMustMatch(t *testing.T) {
	f := startFakeUpstream(t)
	f.issuer.Store("https://evil.example/as")
	d := newDiscovery(newClient())
	_, err := d.get(contractstest.Ctx(t), &config.Server{Name: "s", URL: f.URL + "/mcp", Credentials: config.Credentials{AuthType: "oauth2"}})
	if err == nil || !strings.Contains(err.Error(), "another issuer") {
		t.Fatalf("got %v, want the issuer refused", err)
	}
}

// The upstream's 401 may name its metadata only on its own origin: a
// challenge naming another host is never fetched (no SSRF through a
// crafted resource_metadata), nor is a resource on another origin taken.
func TestDiscovery_FetchesOnlyFromTheServersOrigin(t *testing.T) {
	var evilHits atomic.Int64
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		evilHits.Add(1)
		_ = json.NewEncoder(w).Encode(map[string]any{"resource": "x", "authorization_servers": []string{"http://127.0.0.1:1"}})
	}))
	t.Cleanup(evil.Close)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/.well-known/") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer resource_metadata="`+evil.URL+`/.well-known/oauth-protected-resource"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(up.Close)
	d := newDiscovery(newClient())
	if _, err := d.get(contractstest.Ctx(t), &config.Server{Name: "s", URL: up.URL + "/mcp", Credentials: config.Credentials{AuthType: "oauth2"}}); err == nil {
		t.Fatal("discovery succeeded through another origin's metadata")
	}
	if evilHits.Load() != 0 {
		t.Fatal("the metadata URL on another origin was fetched")
	}
}

func TestRegister_RedirectURIPolicy(t *testing.T) {
	for uri, want := range map[string]bool{
		"https://app.example/cb":          true,
		"http://127.0.0.1:33418/callback": true,
		"http://localhost:8080/cb":        true,
		"com.example.app:/oauth":          true,
		"http://app.example/cb":           false, // http off loopback
		"https://app.example/cb#frag":     false,
		"javascript:alert(1)":             false,
		"/relative":                       false,
		"https://user:pw@app.example/cb":  false,
		"https://app.example/a b":         false,
	} {
		if got := validRedirect(uri); got != want {
			t.Errorf("validRedirect(%q) = %v, want %v", uri, got, want)
		}
	}
}

// tokenEndpoint records the form of each token request and answers a token.
type tokenEndpoint struct {
	*httptest.Server
	mu    sync.Mutex
	forms []url.Values
}

func startTokenEndpoint(t *testing.T) *tokenEndpoint {
	te := &tokenEndpoint{}
	te.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		te.mu.Lock()
		te.forms = append(te.forms, r.PostForm)
		te.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"at","token_type":"Bearer","expires_in":60}`))
	}))
	t.Cleanup(te.Close)
	return te
}

// The configured-client flow's checks: redirect URIs exact-matched, the
// resource indicator checked and rewritten, PKCE required, the state and
// code sealed and bound to the client and its redirect URI.
func TestConfiguredClient_ExactMatchAndBinding(t *testing.T) {
	te := startTokenEndpoint(t)
	srv := &config.Server{URL: "http://127.0.0.1:1/mcp", Credentials: config.Credentials{
		AuthType: "oauth2", ClientID: "gw", ClientSecret: "gw-secret",
		AuthorizationURL: "https://as.example/authorize", TokenURL: te.URL + "/token",
	}}
	_, base := newTestProxy(t, srv)
	register := func(uris ...string) string {
		r := postJSON(t, base+"/s/register", map[string]any{"redirect_uris": uris})
		if r.status != http.StatusCreated {
			t.Fatalf("register: %d %v", r.status, r.body)
		}
		if _, ok := r.body["client_secret"]; ok {
			t.Fatal("registration issued a client secret")
		}
		return r.body["client_id"].(string)
	}
	alice := register("https://alice.example/cb")
	mallory := register("https://mallory.example/cb")
	if r := postJSON(t, base+"/s/register", map[string]any{"redirect_uris": []string{"http://evil.example/cb"}}); r.status != http.StatusBadRequest {
		t.Fatalf("a non-loopback http redirect URI was registered: %d", r.status)
	}
	authorize := func(q url.Values) result { return send(t, http.MethodGet, base+"/s/authorize?"+q.Encode(), nil) }
	good := url.Values{
		"response_type": {"code"}, "client_id": {alice}, "redirect_uri": {"https://alice.example/cb"},
		"state": {"st"}, "code_challenge": {"abc"}, "code_challenge_method": {"S256"}, "resource": {base + "/s/mcp"},
	}
	with := func(k, v string) url.Values {
		q := url.Values{}
		for kk, vv := range good {
			q[kk] = vv
		}
		if v == "" {
			q.Del(k)
		} else {
			q.Set(k, v)
		}
		return q
	}
	if r := authorize(with("redirect_uri", "https://alice.example/cb/")); r.status != http.StatusBadRequest || errorCode(r) != "invalid_request" {
		t.Errorf("a redirect URI that is not exactly the registered one: %d %v", r.status, r.body)
	}
	if r := authorize(with("client_id", "tbc1.forged")); r.status != http.StatusBadRequest || errorCode(r) != "invalid_client" {
		t.Errorf("a forged client_id: %d %v", r.status, r.body)
	}
	if r := authorize(with("resource", "https://other.example/mcp")); r.status != http.StatusBadRequest || errorCode(r) != "invalid_target" {
		t.Errorf("another resource: %d %v", r.status, r.body)
	}
	if r := authorize(with("code_challenge", "")); r.status != http.StatusFound || !strings.HasPrefix(r.header.Get("Location"), "https://alice.example/cb?") ||
		!strings.Contains(r.header.Get("Location"), "error=invalid_request") {
		t.Errorf("no PKCE: %d %s", r.status, r.header.Get("Location"))
	}
	r := authorize(good)
	loc, _ := url.Parse(r.header.Get("Location"))
	if r.status != http.StatusFound || loc == nil || loc.Host != "as.example" {
		t.Fatalf("authorize: %d %v", r.status, r.header)
	}
	up := loc.Query()
	if up.Get("client_id") != "gw" || up.Get("redirect_uri") != base+"/callback" || up.Get("resource") != srv.URL ||
		up.Get("code_challenge") != "abc" || up.Get("state") == "st" || up.Get("client_secret") != "" {
		t.Fatalf("the upstream authorization request: %v", up)
	}

	// The callback: a tampered state is refused; a good one sends the
	// client a code of the gateway's.
	if r := send(t, http.MethodGet, base+"/callback?"+url.Values{"code": {"UP"}, "state": {up.Get("state") + "x"}}.Encode(), nil); r.status != http.StatusBadRequest {
		t.Errorf("a tampered state: %d", r.status)
	}
	r = send(t, http.MethodGet, base+"/callback?"+url.Values{"code": {"UP"}, "state": {up.Get("state")}}.Encode(), nil)
	back, _ := url.Parse(r.header.Get("Location"))
	if r.status != http.StatusFound || back == nil || back.Host != "alice.example" || back.Query().Get("state") != "st" ||
		back.Query().Get("iss") != base+"/s" || back.Query().Get("code") == "" || back.Query().Get("code") == "UP" {
		t.Fatalf("callback: %d %s", r.status, r.header.Get("Location"))
	}
	code := back.Query().Get("code")

	token := func(form url.Values) result { return send(t, http.MethodPost, base+"/s/token", form) }
	if r := token(url.Values{"grant_type": {"authorization_code"}, "client_id": {mallory}, "code": {code}, "code_verifier": {"v"}}); r.status != http.StatusBadRequest || errorCode(r) != "invalid_grant" {
		t.Errorf("another client's code: %d %v", r.status, r.body)
	}
	if r := token(url.Values{"grant_type": {"authorization_code"}, "client_id": {alice}, "code": {code}, "redirect_uri": {"https://mallory.example/cb"}}); r.status != http.StatusBadRequest || errorCode(r) != "invalid_grant" {
		t.Errorf("another redirect URI: %d %v", r.status, r.body)
	}
	if n := len(te.forms); n != 0 {
		t.Fatalf("refused token requests reached the upstream (%d)", n)
	}
	r = token(url.Values{"grant_type": {"authorization_code"}, "client_id": {alice}, "code": {code},
		"redirect_uri": {"https://alice.example/cb"}, "code_verifier": {"v"}, "resource": {base + "/s/mcp"}})
	if r.status != http.StatusOK || r.body["access_token"] != "at" || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("token: %d %v %v", r.status, r.body, r.header)
	}
	got := te.forms[0]
	want := url.Values{"grant_type": {"authorization_code"}, "code": {"UP"}, "redirect_uri": {base + "/callback"}, "code_verifier": {"v"},
		"client_id": {"gw"}, "client_secret": {"gw-secret"}, "resource": {srv.URL}}
	if got.Encode() != want.Encode() {
		t.Fatalf("the upstream token request:\n got %v\nwant %v", got, want)
	}
}

// Without a configured client, registration goes to the upstream's
// registration endpoint, redirect URIs unchanged and the resource
// indicator rewritten; its answer comes back as it is.
func TestPassThrough_RegistrationIsRelayed(t *testing.T) {
	f := startFakeUpstream(t)
	_, base := newTestProxy(t, &config.Server{URL: f.URL + "/mcp", Credentials: config.Credentials{AuthType: "oauth2"}})
	if r := send(t, http.MethodGet, base+"/.well-known/oauth-authorization-server/s", nil); r.body["registration_endpoint"] != base+"/s/register" {
		t.Fatalf("metadata offers no registration: %v", r.body)
	}
	r := postJSON(t, base+"/s/register", map[string]any{"redirect_uris": []string{"http://127.0.0.1:9/cb"}, "resource": base + "/s/mcp"})
	if r.status != http.StatusCreated || r.body["client_id"] != "upstream-client" || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("register: %d %v", r.status, r.body)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.registered) != 1 || f.registered[0]["resource"] != f.URL+"/mcp" ||
		f.registered[0]["redirect_uris"].([]any)[0] != "http://127.0.0.1:9/cb" {
		t.Fatalf("the upstream received %v", f.registered)
	}
}

// An upstream token endpoint that echoes what it was sent (the configured
// client secret among it) in an error, or in a success, never gets it to
// the client.
func TestConfiguredClient_UpstreamEchoOfTheSecretIsNotRelayed(t *testing.T) {
	var status atomic.Int64
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(int(status.Load()))
		_ = json.NewEncoder(w).Encode(map[string]any{"error": "invalid_client", "error_description": "bad secret " + r.PostForm.Get("client_secret")})
	}))
	t.Cleanup(echo.Close)
	const secret = "gw-secret-echoed-7c2a"
	_, base := newTestProxy(t, &config.Server{URL: "http://127.0.0.1:1/mcp", Credentials: config.Credentials{
		AuthType: "oauth2", ClientID: "gw", ClientSecret: secret,
		AuthorizationURL: "https://as.example/authorize", TokenURL: echo.URL,
	}})
	client := postJSON(t, base+"/s/register", map[string]any{"redirect_uris": []string{"https://app.example/cb"}}).body["client_id"].(string)
	for _, st := range []int64{http.StatusUnauthorized, http.StatusOK} {
		status.Store(st)
		r := send(t, http.MethodPost, base+"/s/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"rt"}, "client_id": {client}})
		raw, _ := json.Marshal(r.body)
		if strings.Contains(string(raw), secret) {
			t.Fatalf("HTTP %d from the upstream: the client secret reached the client: %s", st, raw)
		}
		if st == http.StatusUnauthorized && (r.status != http.StatusUnauthorized || errorCode(r) != "invalid_client") {
			t.Errorf("an upstream refusal: got %d %v, want 401 invalid_client", r.status, r.body)
		}
		if st == http.StatusOK && r.status != http.StatusBadGateway {
			t.Errorf("a success that holds the secret: got %d, want 502", r.status)
		}
	}
}
