package upstream_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/worker/demoserver"
	"github.com/toolbus/toolbus/worker/internal/workertest"
	"github.com/toolbus/toolbus/worker/upstream"
)

// received is one HTTP request as a recorded upstream got it, body included.
type received struct {
	Method, Host, Path string
	Header             http.Header
	Body               []byte
}

// recorded is a real mcp-go MCP server (the demo server, streamable HTTP)
// on loopback behind a handler that records every request whole.
type recorded struct {
	URL  string
	mu   sync.Mutex
	reqs []received
}

func startRecorded(t *testing.T, opts demoserver.Options) *recorded {
	t.Helper()
	h, err := demoserver.NewHandler(opts, demoserver.TransportHTTP)
	if err != nil {
		t.Fatal(err)
	}
	u := &recorded{}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		u.mu.Lock()
		u.reqs = append(u.reqs, received{Method: r.Method, Host: r.Host, Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
		u.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	u.URL = ts.URL + demoserver.PathMCP
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), contractstest.WaitTimeout)
		defer cancel()
		h.Close(ctx)
		ts.Close()
	})
	return u
}

func (u *recorded) requests() []received {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]received(nil), u.reqs...)
}

// values is the named header of every request ("" where absent).
func (u *recorded) values(name string) []string {
	var out []string
	for _, r := range u.requests() {
		out = append(out, r.Header.Get(name))
	}
	return out
}

// normalized returns s completed as a loaded configuration is.
func normalized(t *testing.T, s *config.Server) *config.Server {
	t.Helper()
	f := &config.File{MCPServers: map[string]*config.Server{s.Name: s}}
	if err := f.Normalize(); err != nil {
		t.Fatal(err)
	}
	return f.MCPServers[s.Name]
}

const callerToken = "Bearer caller-token-must-not-leak"

// Per auth_type, exactly the credential headers the MCP server received on
// every request (initialize, notifications, the call), and the caller's
// token only where the server passes it through.
func TestPool_ServiceCredentialPerAuthType(t *testing.T) {
	t.Parallel()
	tokens := contractstest.StartTokenEndpoint(t, "toolbus-worker", "client-secret-must-not-leak", time.Hour)
	for _, tc := range []struct {
		name          string
		creds         config.Credentials
		auth          string
		authorization string // want; "token" = the issued OAuth2 token
		apiKey        string
		static        map[string]string
	}{
		{name: "api_key", creds: config.Credentials{AuthType: "api_key", AuthValue: "svc-api-key"}, apiKey: "svc-api-key"},
		{name: "bearer_token", creds: config.Credentials{AuthType: "bearer_token", AuthValue: "svc-bearer"}, authorization: "Bearer svc-bearer"},
		{name: "basic", creds: config.Credentials{AuthType: "basic", AuthValue: "svc-user:svc-pass"},
			authorization: "Basic " + base64.StdEncoding.EncodeToString([]byte("svc-user:svc-pass"))},
		{name: "authorization", creds: config.Credentials{AuthType: "authorization", AuthValue: "Custom svc-value"}, authorization: "Custom svc-value"},
		{name: "authentication_token", creds: config.Credentials{AuthType: "bearer_token", AuthenticationToken: "svc-old"}, authorization: "Bearer svc-old"},
		{name: "oauth2 client_credentials", creds: config.Credentials{AuthType: "oauth2", OAuth2Flow: "client_credentials",
			ClientID: tokens.ClientID, ClientSecret: tokens.ClientSecret, TokenURL: tokens.URL, Scopes: []string{"mcp:read"}}, authorization: "token"},
		{name: "none with static_headers", creds: config.Credentials{AuthType: "none", StaticHeaders: map[string]string{"X-Custom-Auth": "svc-static"}},
			static: map[string]string{"X-Custom-Auth": "svc-static"}},
		{name: "auth none (older spelling)", auth: config.AuthNone},
		{name: "api_key with static_headers", creds: config.Credentials{AuthType: "api_key", AuthValue: "k2", StaticHeaders: map[string]string{"X-Tenant": "t1"}},
			apiKey: "k2", static: map[string]string{"X-Tenant": "t1"}},
		{name: "passthrough (not set)", authorization: callerToken},
		{name: "true_passthrough", creds: config.Credentials{AuthType: "true_passthrough"}, authorization: callerToken},
		{name: "oauth2 without a flow", creds: config.Credentials{AuthType: "oauth2"}, authorization: callerToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := startRecorded(t, demoserver.Options{})
			srv := normalized(t, &config.Server{Name: "s", URL: up.URL, Auth: tc.auth, Credentials: tc.creds})
			logs := &contractstest.LogBuffer{}
			p := newPool(t, upstream.Options{}, logs)
			got, err := whoami(contractstest.Ctx(t), p, srv, callerToken)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.authorization
			if want == "token" {
				issued := tokens.Issued()
				want = "Bearer " + issued[len(issued)-1]
			}
			if got != want {
				t.Errorf("whoami saw Authorization %q, want %q", got, want)
			}
			if len(up.requests()) < 2 {
				t.Fatalf("only %d requests recorded", len(up.requests()))
			}
			for _, r := range up.requests() {
				if v := r.Header.Get("Authorization"); v != want {
					t.Errorf("%s %s: Authorization %q, want %q", r.Method, r.Path, v, want)
				}
				if v := r.Header.Get("X-API-Key"); v != tc.apiKey {
					t.Errorf("%s: X-API-Key %q, want %q", r.Method, v, tc.apiKey)
				}
				for name, value := range tc.static {
					if r.Header.Get(name) != value {
						t.Errorf("%s: %s %q, want %q", r.Method, name, r.Header.Get(name), value)
					}
				}
				if want != callerToken {
					for name, values := range r.Header {
						if strings.Contains(strings.Join(values, " "), "caller-token") {
							t.Errorf("the caller's token reached a server with auth %q in %s", tc.name, name)
						}
					}
				}
			}
			for _, secret := range []string{"svc-api-key", "svc-bearer", "svc-pass", "svc-value", "svc-old", "svc-static", tokens.ClientSecret} {
				if strings.Contains(logs.String(), secret) {
					t.Errorf("%q is in the worker's logs", secret)
				}
			}
		})
	}
}

// A worker never sends the caller's token to a server with its own
// credential, even when one reached it.
func TestPool_ServiceCredentialServerNeverGetsTheCallersToken(t *testing.T) {
	t.Parallel()
	up := startRecorded(t, demoserver.Options{})
	srv := normalized(t, &config.Server{Name: "s", URL: up.URL, Credentials: config.Credentials{AuthType: "api_key", AuthValue: "k"}})
	p := newPool(t, upstream.Options{}, nil)
	for _, tok := range []string{callerToken, "Bearer another-caller"} {
		if got, err := whoami(contractstest.Ctx(t), p, srv, tok); err != nil || got != "" {
			t.Fatalf("whoami = %q, %v", got, err)
		}
	}
	if got := p.Stats().Connects; got != 1 {
		t.Errorf("%d clients for one service credential, want 1 shared", got)
	}
}

func oauth2Server(t *testing.T, url string, tokens *contractstest.TokenEndpoint) *config.Server {
	return normalized(t, &config.Server{Name: "m2m", URL: url, Credentials: config.Credentials{
		AuthType: "oauth2", OAuth2Flow: "client_credentials", ClientID: tokens.ClientID,
		ClientSecret: tokens.ClientSecret, TokenURL: tokens.URL, Scopes: []string{"mcp:read", "mcp:write"},
	}})
}

// 100 concurrent calls make one token request; every request carries that
// token; the request is the client credentials grant with the scopes.
func TestPool_OAuth2_OneTokenRequestForConcurrentCalls(t *testing.T) {
	t.Parallel()
	tokens := contractstest.StartTokenEndpoint(t, "cid", "client-secret-x", time.Hour)
	up := startRecorded(t, demoserver.Options{})
	srv := oauth2Server(t, up.URL, tokens)
	p := newPool(t, upstream.Options{}, nil)
	ctx := contractstest.Ctx(t)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	start := make(chan struct{})
	for range 100 {
		wg.Go(func() {
			<-start
			_, err := p.CallTool(ctx, srv, contracts.Token{}, demoserver.ToolEcho, []byte(`{"text":"x"}`))
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := tokens.Requests(); n != 1 {
		t.Fatalf("%d token requests for 100 concurrent calls, want 1", n)
	}
	if n := p.TokenRequests(srv); n != 1 {
		t.Fatalf("pool counted %d token requests", n)
	}
	want := "Bearer " + tokens.Issued()[0]
	for _, v := range up.values("Authorization") {
		if v != want {
			t.Fatalf("upstream saw %q, want %q", v, want)
		}
	}
	form := tokens.Forms()[0]
	if form.Get("grant_type") != "client_credentials" || form.Get("scope") != "mcp:read mcp:write" || form.Get("client_id") != "cid" {
		t.Fatalf("token request form %v", form)
	}
}

// A token is used until shortly before it expires, then replaced once.
func TestPool_OAuth2_ExpiryAndRefresh(t *testing.T) {
	t.Parallel()
	tokens := contractstest.StartTokenEndpoint(t, "cid", "client-secret-y", time.Hour)
	up := startRecorded(t, demoserver.Options{})
	srv := oauth2Server(t, up.URL, tokens)
	var offset atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	p := newPool(t, upstream.Options{Now: now}, nil)
	ctx := contractstest.Ctx(t)
	call := func() string {
		t.Helper()
		got, err := whoami(ctx, p, srv, "")
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	first := call()
	offset.Store(int64(57 * time.Minute)) // still valid, outside the early-refresh minute
	if got := call(); got != first || tokens.Requests() != 1 {
		t.Fatalf("within its lifetime: %q (first %q), %d token requests", got, first, tokens.Requests())
	}
	offset.Store(int64(59*time.Minute + 30*time.Second)) // in the last minute: refreshed
	second := call()
	if tokens.Requests() != 2 || second == first || second != "Bearer "+tokens.Issued()[1] {
		t.Fatalf("after expiry: %q (first %q), %d token requests", second, first, tokens.Requests())
	}
	if got := call(); got != second || tokens.Requests() != 2 {
		t.Fatalf("the refreshed token is not reused: %q, %d requests", got, tokens.Requests())
	}
}

// A failing, refusing or hanging token endpoint fails the call with
// upstream_auth_failed, promptly, and its body (which echoes the secret)
// reaches neither the error nor the logs.
func TestPool_OAuth2_TokenEndpointFailures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		setup func(*contractstest.TokenEndpoint)
		want  string
	}{
		{"server error", func(e *contractstest.TokenEndpoint) { e.Fail(http.StatusInternalServerError) }, "token endpoint failed"},
		{"refused client", func(e *contractstest.TokenEndpoint) { e.Fail(http.StatusUnauthorized) }, "refused the gateway's client credentials"},
		{"hangs", func(e *contractstest.TokenEndpoint) { e.Hang() }, "did not answer in time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const secret = "client-secret-echoed-by-the-endpoint"
			tokens := contractstest.StartTokenEndpoint(t, "cid", secret, time.Hour)
			tc.setup(tokens)
			up := startRecorded(t, demoserver.Options{})
			srv := oauth2Server(t, up.URL, tokens)
			logs := &contractstest.LogBuffer{}
			p := newPool(t, upstream.Options{TokenTimeout: 300 * time.Millisecond}, logs)
			_, err := p.CallTool(contractstest.Ctx(t), srv, contracts.Token{}, demoserver.ToolEcho, nil)
			var ue *upstream.Error
			if !errors.As(err, &ue) || ue.Wire.Code != contracts.CodeUpstreamAuthFailed || !strings.Contains(ue.Wire.Message, tc.want) {
				t.Fatalf("got %v, want upstream_auth_failed (%s)", err, tc.want)
			}
			if !ue.Wire.Retryable || ue.Wire.WWWAuthenticate != "" {
				t.Errorf("wire error %+v", ue.Wire)
			}
			if strings.Contains(ue.Error()+ue.Detail, secret) || strings.Contains(logs.String(), secret) {
				t.Fatal("the client secret leaked into the error or the logs")
			}
			if len(up.requests()) != 0 {
				t.Errorf("the MCP server was sent %d requests without a credential", len(up.requests()))
			}
		})
	}
}

// An MCP server refusing its own service credential is upstream_auth_failed,
// without its challenge: the caller cannot fix it.
func TestPool_ServiceCredentialRefused(t *testing.T) {
	t.Parallel()
	up := startRecorded(t, demoserver.Options{RequireToken: "Bearer right"})
	srv := normalized(t, &config.Server{Name: "s", URL: up.URL, Credentials: config.Credentials{AuthType: "bearer_token", AuthValue: "wrong"}})
	p := newPool(t, upstream.Options{}, nil)
	_, err := p.CallTool(contractstest.Ctx(t), srv, contracts.NewToken("Bearer right"), demoserver.ToolEcho, nil)
	var ue *upstream.Error
	if !errors.As(err, &ue) || ue.Wire.Code != contracts.CodeUpstreamAuthFailed || ue.Wire.WWWAuthenticate != "" {
		t.Fatalf("got %v", err)
	}
}

// Every request to an aws_sigv4 server carries a SigV4 signature that
// verifies: the test signs the received request again, with the same AWS
// SDK signer, keys and time and only the headers the signature names, and
// compares the Authorization headers.
func TestPool_SigV4_SignatureVerifies(t *testing.T) {
	t.Parallel()
	up := startRecorded(t, demoserver.Options{})
	const keyID, secretKey, session = "AKIDEXAMPLE", "sigv4-secret-must-not-leak", "session-token-x"
	srv := normalized(t, &config.Server{Name: "agentcore", URL: up.URL, Credentials: config.Credentials{
		AuthType: "aws_sigv4", AWSRegionName: "us-east-1", AWSAccessKeyID: keyID, AWSSecretAccessKey: secretKey, AWSSessionToken: session,
	}})
	logs := &contractstest.LogBuffer{}
	p := newPool(t, upstream.Options{}, logs)
	if got, err := whoami(contractstest.Ctx(t), p, srv, callerToken); err != nil || !strings.HasPrefix(got, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/") {
		t.Fatalf("whoami = %q, %v", got, err)
	}
	reqs := up.requests()
	if len(reqs) < 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	verifySigV4(t, reqs, aws.Credentials{AccessKeyID: keyID, SecretAccessKey: secretKey, SessionToken: session})
	if strings.Contains(logs.String(), secretKey) {
		t.Error("the secret key is in the logs")
	}
}

// verifySigV4 checks that every request carries a SigV4 signature of creds
// that verifies (signed again with the AWS SDK signer), naming the usual
// headers, and never the caller's token.
func verifySigV4(t *testing.T, reqs []received, creds aws.Credentials) {
	t.Helper()
	for _, r := range reqs {
		auth := r.Header.Get("Authorization")
		_, signedList, ok := strings.Cut(auth, "SignedHeaders=")
		if !ok {
			t.Fatalf("%s: Authorization %q", r.Method, auth)
		}
		signedList, _, _ = strings.Cut(signedList, ",")
		signed := strings.Split(signedList, ";")
		for _, must := range []string{"host", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token", "content-type"} {
			if r.Method == http.MethodPost && !contains(signed, must) {
				t.Errorf("%s: %s is not signed (%s)", r.Method, must, signedList)
			}
		}
		if !strings.Contains(auth, "/us-east-1/"+config.DefaultAWSServiceName+"/aws4_request") {
			t.Errorf("credential scope in %q", auth)
		}
		when, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
		if err != nil {
			t.Fatal(err)
		}
		again, _ := http.NewRequest(r.Method, "http://"+r.Host+r.Path, bytes.NewReader(r.Body))
		for _, name := range signed {
			if name != "host" {
				again.Header[http.CanonicalHeaderKey(name)] = r.Header.Values(name)
			}
		}
		if len(r.Body) == 0 {
			again.ContentLength = 0
		}
		hash := r.Header.Get("X-Amz-Content-Sha256")
		if err := v4.NewSigner().SignHTTP(context.Background(), creds, again, hash, config.DefaultAWSServiceName, "us-east-1", when); err != nil {
			t.Fatal(err)
		}
		if again.Header.Get("Authorization") != auth {
			t.Errorf("%s %s: signature does not verify\n got %s\nwant %s", r.Method, r.Path, auth, again.Header.Get("Authorization"))
		}
		if strings.Contains(strings.Join(r.Header.Values("Authorization"), ""), "caller-token") {
			t.Error("the caller's token reached the SigV4 server")
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// An SSE server gets its service credential on the stream and on every
// message it is posted.
func TestPool_ServiceCredentialOverSSE(t *testing.T) {
	t.Parallel()
	run := workertest.StartDemo(t, demoserver.Options{}, config.TransportSSE)
	srv := normalized(t, &config.Server{Name: "legacy", Transport: config.TransportSSE, URL: run.URL,
		Credentials: config.Credentials{AuthType: "bearer_token", AuthValue: "sse-svc", StaticHeaders: map[string]string{"X-Tenant": "t"}}})
	p := newPool(t, upstream.Options{}, nil)
	if got, err := whoami(contractstest.Ctx(t), p, srv, callerToken); err != nil || got != "Bearer sse-svc" {
		t.Fatalf("whoami = %q, %v", got, err)
	}
	reqs := run.Recorder.Entries()
	if len(reqs) < 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	for _, r := range reqs {
		if r.Authorization != "Bearer sse-svc" || r.Header.Get("X-Tenant") != "t" {
			t.Errorf("%s %s: Authorization %q, X-Tenant %q", r.Method, r.Path, r.Authorization, r.Header.Get("X-Tenant"))
		}
	}
}

// A token the MCP server refuses is dropped: the call fails with
// upstream_auth_failed, and the next one fetches a new token.
func TestPool_OAuth2_RefusedTokenIsReplaced(t *testing.T) {
	t.Parallel()
	tokens := contractstest.StartTokenEndpoint(t, "cid", "client-secret-z", time.Hour)
	h, err := demoserver.NewHandler(demoserver.Options{}, demoserver.TransportHTTP)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if issued := tokens.Issued(); len(issued) > 0 && r.Header.Get("Authorization") == "Bearer "+issued[0] {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			http.Error(w, "revoked", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), contractstest.WaitTimeout)
		defer cancel()
		h.Close(ctx)
		ts.Close()
	})
	srv := oauth2Server(t, ts.URL+demoserver.PathMCP, tokens)
	p := newPool(t, upstream.Options{}, nil)
	ctx := contractstest.Ctx(t)
	_, err = p.CallTool(ctx, srv, contracts.Token{}, demoserver.ToolEcho, nil)
	var ue *upstream.Error
	if !errors.As(err, &ue) || ue.Wire.Code != contracts.CodeUpstreamAuthFailed || ue.Wire.WWWAuthenticate != "" {
		t.Fatalf("first call: %v", err)
	}
	if got, err := whoami(ctx, p, srv, ""); err != nil || got != "Bearer "+tokens.Issued()[1] {
		t.Fatalf("second call: %q, %v", got, err)
	}
	if n := tokens.Requests(); n != 2 {
		t.Fatalf("%d token requests, want 2", n)
	}
}
