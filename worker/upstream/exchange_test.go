package upstream_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/worker/demoserver"
	"github.com/toolbus/toolbus/worker/upstream"
)

const stsAudience = "api://jira-mcp"

func exchangeServer(t *testing.T, url string, s *contractstest.STS) *config.Server {
	return normalized(t, &config.Server{Name: "jira", URL: url, Credentials: config.Credentials{
		AuthType: config.AuthTypeOAuth2TokenExchange, TokenExchangeEndpoint: s.TokenURL,
		ClientID: contractstest.STSClientID, ClientSecret: contractstest.STSClientSecret, Audience: stsAudience, Scopes: []string{"openid", "mcp.tools"},
	}})
}

// The worker exchanges the caller's token at the provider, once for
// concurrent calls of one caller; the MCP server sees only the exchanged
// token on every request; a second caller gets its own exchange; the token
// is reused until shortly before it expires, then exchanged again.
func TestPool_TokenExchange(t *testing.T) {
	t.Parallel()
	s := contractstest.StartSTS(t, nil)
	up := startRecorded(t, demoserver.Options{})
	srv := exchangeServer(t, up.URL, s)
	var offset atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	logs := &contractstest.LogBuffer{}
	p := newPool(t, upstream.Options{Now: now}, logs)
	ctx := contractstest.Ctx(t)
	alice := s.SubjectToken(t)

	var wg sync.WaitGroup
	seen := make(chan string, 20)
	for range 20 {
		wg.Go(func() {
			got, err := whoami(ctx, p, srv, "Bearer "+alice)
			if err != nil {
				t.Error(err)
			}
			seen <- got
		})
	}
	wg.Wait()
	close(seen)
	var exchanged string
	for got := range seen {
		if exchanged == "" {
			exchanged = got
		}
		if got != exchanged || !strings.HasPrefix(got, "Bearer ") || strings.Contains(got, alice) {
			t.Fatalf("upstream saw %q (and %q)", got, exchanged)
		}
	}
	if n := p.TokenRequests(srv); n != 1 {
		t.Fatalf("%d exchanges for 20 concurrent calls of one caller, want 1", n)
	}
	ex := s.Exchanges()
	if len(ex) != 1 || ex[0].Subject != "sid1" || ex[0].ClientID != contractstest.STSClientID ||
		!slices.Equal(ex[0].Audience, []string{stsAudience}) || !slices.Equal(ex[0].Scopes, []string{"openid", "mcp.tools"}) {
		t.Fatalf("the provider saw the exchanges %+v", ex)
	}
	for _, r := range up.requests() {
		for name, values := range r.Header {
			if strings.Contains(strings.Join(values, " "), alice) {
				t.Fatalf("the caller's token reached the MCP server in %s", name)
			}
		}
		if v := r.Header.Get("Authorization"); v != exchanged {
			t.Fatalf("%s: Authorization %q, want the exchanged token", r.Method, v)
		}
	}

	// Another caller token: its own exchange, its own token.
	bob := s.SubjectToken(t)
	if got, err := whoami(ctx, p, srv, "Bearer "+bob); err != nil || got == exchanged || !strings.HasPrefix(got, "Bearer ") {
		t.Fatalf("second caller: %q, %v", got, err)
	}
	if n := p.TokenRequests(srv); n != 2 {
		t.Fatalf("%d exchanges for two callers, want 2", n)
	}

	// The provider's tokens live 5 minutes: reused within, exchanged again
	// in the last minute.
	offset.Store(int64(3 * time.Minute))
	wantWhoami(t, ctx, p, srv, "Bearer "+alice, exchanged)
	if n := p.TokenRequests(srv); n != 2 {
		t.Fatalf("%d exchanges within the token's lifetime, want 2", n)
	}
	offset.Store(int64(4*time.Minute + 30*time.Second))
	if got, err := whoami(ctx, p, srv, "Bearer "+alice); err != nil || got == exchanged {
		t.Fatalf("after expiry: %q, %v", got, err)
	}
	if n := p.TokenRequests(srv); n != 3 {
		t.Fatalf("%d exchanges after expiry, want 3", n)
	}
	for _, secret := range []string{alice, bob, contractstest.STSClientSecret, strings.TrimPrefix(exchanged, "Bearer ")} {
		if strings.Contains(logs.String(), secret) {
			t.Fatal("a token or the client secret is in the worker's logs")
		}
	}
}

// A subject token the provider refuses is the caller's to fix: 401
// upstream_unauthorized, nothing sent upstream. A refused client secret,
// a provider that is down or hangs: upstream_auth_failed, promptly. No
// error or log quotes a token or the secret.
func TestPool_TokenExchangeFailures(t *testing.T) {
	t.Parallel()
	s := contractstest.StartSTS(t, nil)
	good := s.SubjectToken(t)
	released := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-released:
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(released) }) // runs first
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL + "/oauth/token"
	down.Close()

	for _, tc := range []struct {
		name  string
		token string
		edit  func(*config.Server)
		code  contracts.ErrorCode
		want  string
	}{
		{"invalid subject token", "Bearer not-a-token-of-this-issuer", nil, contracts.CodeUpstreamUnauthorized, "refused the caller's token"},
		{"no caller token", "", nil, contracts.CodeUpstreamUnauthorized, "refused the caller's token"},
		{"wrong client secret", "Bearer " + good, func(srv *config.Server) { srv.ClientSecret = "wrong-secret" }, contracts.CodeUpstreamAuthFailed, "client credentials"},
		{"endpoint down", "Bearer " + good, func(srv *config.Server) { srv.TokenExchangeEndpoint = downURL }, contracts.CodeUpstreamAuthFailed, "endpoint failed"},
		{"endpoint hangs", "Bearer " + good, func(srv *config.Server) { srv.TokenExchangeEndpoint = hang.URL }, contracts.CodeUpstreamAuthFailed, "did not answer in time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			up := startRecorded(t, demoserver.Options{})
			srv := exchangeServer(t, up.URL, s)
			if tc.edit != nil {
				tc.edit(srv)
			}
			logs := &contractstest.LogBuffer{}
			p := newPool(t, upstream.Options{TokenTimeout: 500 * time.Millisecond}, logs)
			_, err := p.CallTool(contractstest.Ctx(t), srv, contracts.NewToken(tc.token), demoserver.ToolEcho, nil)
			var ue *upstream.Error
			if !errors.As(err, &ue) || ue.Wire.Code != tc.code || !strings.Contains(ue.Wire.Message, tc.want) {
				t.Fatalf("got %v, want %s (%s)", err, tc.code, tc.want)
			}
			for _, secret := range []string{good, contractstest.STSClientSecret, "not-a-token-of-this-issuer"} {
				if strings.Contains(ue.Error()+ue.Detail, secret) || strings.Contains(logs.String(), secret) {
					t.Fatal("a token or the client secret leaked into the error or the logs")
				}
			}
			if len(up.requests()) != 0 {
				t.Errorf("the MCP server was sent %d requests", len(up.requests()))
			}
		})
	}
}

// A server that refuses the exchanged token: upstream_auth_failed without
// its challenge, and the next call exchanges again.
func TestPool_TokenExchangeRefusedByServer(t *testing.T) {
	t.Parallel()
	s := contractstest.StartSTS(t, nil)
	up := startRecorded(t, demoserver.Options{RequireToken: "Bearer only-this"})
	srv := exchangeServer(t, up.URL, s)
	p := newPool(t, upstream.Options{}, nil)
	tok := "Bearer " + s.SubjectToken(t)
	for i := 1; i <= 2; i++ {
		_, err := p.CallTool(contractstest.Ctx(t), srv, contracts.NewToken(tok), demoserver.ToolEcho, nil)
		var ue *upstream.Error
		if !errors.As(err, &ue) || ue.Wire.Code != contracts.CodeUpstreamAuthFailed || ue.Wire.WWWAuthenticate != "" {
			t.Fatalf("call %d: %v", i, err)
		}
		if n := p.TokenRequests(srv); n != uint64(i) {
			t.Fatalf("call %d: %d exchanges, want %d (a refused token is dropped)", i, n, i)
		}
	}
}
