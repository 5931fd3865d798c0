package upstream_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
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
	"github.com/toolbus/toolbus/worker/internal/workertest"
	"github.com/toolbus/toolbus/worker/upstream"
)

func newPool(t *testing.T, opts upstream.Options, logs *contractstest.LogBuffer) *upstream.Pool {
	t.Helper()
	if logs != nil {
		opts.Logger = logs.Logger("worker")
	}
	p := upstream.New(opts)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// wantWhoami calls whoami with token and fails the test unless the
// upstream saw want.
func wantWhoami(t *testing.T, ctx context.Context, p *upstream.Pool, srv *config.Server, token, want string) {
	t.Helper()
	if got, err := whoami(ctx, p, srv, token); err != nil || got != want {
		t.Fatalf("whoami(%q) = %q, %v; want %q", token, got, err, want)
	}
}

// demoPool starts a demo server on transport tr and returns it, a pool
// and the server's configuration ("demo").
func demoPool(t *testing.T, opts demoserver.Options, tr string) (*demoserver.Running, *upstream.Pool, *config.Server) {
	t.Helper()
	run := workertest.StartDemo(t, opts, tr)
	return run, newPool(t, upstream.Options{}, nil), httpServer("demo", tr, run.URL)
}

// everyTransport returns, by transport, a function that starts a demo
// server on it (stdio: runs one per client) and returns its configuration.
func everyTransport() map[string]func(t *testing.T) *config.Server {
	return map[string]func(t *testing.T) *config.Server{
		config.TransportHTTP: func(t *testing.T) *config.Server {
			return httpServer("demo", config.TransportHTTP, workertest.StartDemo(t, demoserver.Options{}, config.TransportHTTP).URL)
		},
		config.TransportSSE: func(t *testing.T) *config.Server {
			return httpServer("demo", config.TransportSSE, workertest.StartDemo(t, demoserver.Options{}, config.TransportSSE).URL)
		},
		config.TransportStdio: func(*testing.T) *config.Server { return stdioServer("local", "") },
	}
}

func httpServer(name, tr, url string) *config.Server {
	return &config.Server{Name: name, Transport: tr, URL: url, Auth: config.AuthPassthrough}
}

// stdioServer runs this test binary as a stdio demo server whose whoami
// reports the variable authEnv ("" for none).
func stdioServer(name, authEnv string) *config.Server {
	// GORACE: a race-enabled binary otherwise sleeps a second at exit.
	env := map[string]string{envStdioServer: "1", "GORACE": "atexit_sleep_ms=0"}
	if authEnv != "" {
		env[envStdioAuthEnv] = authEnv
	}
	return &config.Server{
		Name: name, Transport: config.TransportStdio, Command: os.Args[0],
		Args: []string{"-test.run=^$"}, Env: env, Auth: config.AuthPassthrough, AuthEnv: authEnv,
	}
}

type toolResult struct {
	Content []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"content"`
	StructuredContent map[string]any `json:"structuredContent"`
	IsError           bool           `json:"isError"`
}

func decodeResult(t *testing.T, raw json.RawMessage) toolResult {
	t.Helper()
	var r toolResult
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("result %s: %v", raw, err)
	}
	return r
}

func whoami(ctx context.Context, p *upstream.Pool, srv *config.Server, token string) (string, error) {
	raw, err := p.CallTool(ctx, srv, contracts.NewToken(token), demoserver.ToolWhoami, nil)
	if err != nil {
		return "", err
	}
	var r toolResult
	if err := json.Unmarshal(raw, &r); err != nil {
		return "", err
	}
	if len(r.Content) != 1 {
		return "", fmt.Errorf("whoami result %s", raw)
	}
	return r.Content[0].Text, nil
}

func wireCode(err error) contracts.ErrorCode {
	var ue *upstream.Error
	if errors.As(err, &ue) {
		return ue.Wire.Code
	}
	return ""
}

// allowedHeaders are the request headers toolbus and mcp-go may send
// upstream; Mcp-* headers are allowed too. Anything else is a leak.
var allowedHeaders = []string{
	"Authorization", "Accept", "Accept-Encoding", "Content-Type", "Content-Length",
	"User-Agent", "Cache-Control", "Connection", "Last-Event-Id",
}

func checkHeaders(t *testing.T, rec *demoserver.Recorder) {
	t.Helper()
	for _, h := range rec.Requests() {
		for name := range h {
			if !slices.Contains(allowedHeaders, name) && !strings.HasPrefix(name, "Mcp-") {
				t.Errorf("upstream received header %q", name)
			}
		}
	}
}

var httpTransports = []string{config.TransportHTTP, config.TransportSSE}

func TestPool_CallTool_PassesTheTokenExactly(t *testing.T) {
	t.Parallel()
	for _, tr := range httpTransports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			ctx := contractstest.Ctx(t)
			run, p, srv := demoPool(t, demoserver.Options{}, tr)

			const token = "Bearer abc.DEF-123 with spaces"
			got, err := whoami(ctx, p, srv, token)
			if err != nil {
				t.Fatalf("whoami: %v", err)
			}
			if got != token {
				t.Errorf("whoami = %q, want %q", got, token)
			}
			for i, a := range run.Recorder.Authorizations() {
				if a != token {
					t.Errorf("request %d carried Authorization %q, want %q", i, a, token)
				}
			}
			checkHeaders(t, run.Recorder)
		})
	}
}

func TestPool_CallTool_AuthNoneSendsNothing(t *testing.T) {
	t.Parallel()
	for _, tr := range httpTransports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			ctx := contractstest.Ctx(t)
			run, p, srv := demoPool(t, demoserver.Options{}, tr)
			srv.Auth = config.AuthNone

			for _, token := range []string{"Bearer one", "Bearer two", ""} {
				got, err := whoami(ctx, p, srv, token)
				if err != nil {
					t.Fatalf("whoami: %v", err)
				}
				if got != "" {
					t.Errorf("whoami = %q, want no credential", got)
				}
			}
			for i, h := range run.Recorder.Requests() {
				if _, ok := h["Authorization"]; ok {
					t.Errorf("request %d carried an Authorization header", i)
				}
			}
			if st := p.Stats(); st.Connects != 1 {
				t.Errorf("Connects = %d, want 1 client shared by every caller of an auth none server", st.Connects)
			}
		})
	}
}

func TestPool_CallTool_EmptyTokenSendsNoHeader(t *testing.T) {
	t.Parallel()
	ctx := contractstest.Ctx(t)
	_, p, srv := demoPool(t, demoserver.Options{}, config.TransportHTTP)

	wantWhoami(t, ctx, p, srv, "", "")
	wantWhoami(t, ctx, p, srv, "Bearer x", "Bearer x")
	if st := p.Stats(); st.Clients != 2 {
		t.Errorf("Clients = %d, want 2: the empty token is a key of its own", st.Clients)
	}
}

func TestPool_Stdio(t *testing.T) {
	t.Parallel()
	t.Run("auth_env gives each token its own process", func(t *testing.T) {
		t.Parallel()
		ctx := contractstest.Ctx(t)
		p := newPool(t, upstream.Options{}, nil)
		srv := stdioServer("local", "USER_TOKEN")
		for _, token := range []string{"Bearer alice", "Bearer bob", "Bearer alice"} {
			got, err := whoami(ctx, p, srv, token)
			if err != nil {
				t.Fatalf("whoami: %v", err)
			}
			if got != token {
				t.Errorf("whoami = %q, want %q", got, token)
			}
		}
		if st := p.Stats(); st.Clients != 2 || st.Connects != 2 {
			t.Errorf("Stats = %+v, want 2 processes", st)
		}
	})
	t.Run("max_stdio_processes bounds the processes within max_clients", func(t *testing.T) {
		t.Parallel()
		ctx := contractstest.Ctx(t)
		p := newPool(t, upstream.Options{MaxClients: 10, MaxStdioProcesses: 2}, nil)
		srv := stdioServer("local", "USER_TOKEN")
		for _, token := range []string{"Bearer a", "Bearer b", "Bearer c"} {
			wantWhoami(t, ctx, p, srv, token, token)
			if n := p.Stats().Clients; n > 2 {
				t.Fatalf("%d processes, want at most 2", n)
			}
		}
		if st := p.Stats(); st.Evictions != 1 {
			t.Errorf("Stats = %+v, want the third token to evict one process", st)
		}
	})
	t.Run("without auth_env one process and no token", func(t *testing.T) {
		t.Parallel()
		ctx := contractstest.Ctx(t)
		p := newPool(t, upstream.Options{}, nil)
		srv := stdioServer("local", "")
		for _, token := range []string{"Bearer alice", "Bearer bob"} {
			got, err := whoami(ctx, p, srv, token)
			if err != nil {
				t.Fatalf("whoami: %v", err)
			}
			if got != "" {
				t.Errorf("whoami = %q, want nothing", got)
			}
		}
		if st := p.Stats(); st.Clients != 1 {
			t.Errorf("Clients = %d, want 1", st.Clients)
		}
	})
	t.Run("auth none never gets the token", func(t *testing.T) {
		t.Parallel()
		ctx := contractstest.Ctx(t)
		p := newPool(t, upstream.Options{}, nil)
		srv := stdioServer("local", "USER_TOKEN")
		srv.Auth = config.AuthNone
		wantWhoami(t, ctx, p, srv, "Bearer alice", "")
	})
	t.Run("the worker's own secrets are not inherited", func(t *testing.T) {
		t.Parallel()
		ctx := contractstest.Ctx(t)
		p := newPool(t, upstream.Options{BaseEnv: upstream.InheritedEnv([]string{
			"PATH=/usr/bin", "TOOLBUS_SEAL_PRIVATE_KEYS=tbsk1.secret", "USER_TOKEN=worker-own",
		})}, nil)
		// whoami reports TOOLBUS_SEAL_PRIVATE_KEYS, which must be unset.
		srv := stdioServer("local", "")
		srv.Env[envStdioAuthEnv] = "TOOLBUS_SEAL_PRIVATE_KEYS"
		wantWhoami(t, ctx, p, srv, "Bearer alice", "")
		// An auth_env variable of the worker's own is not inherited either.
		srv = stdioServer("local2", "USER_TOKEN")
		wantWhoami(t, ctx, p, srv, "", "")
	})
}

// legacyProtocol is the last protocol revision with sessions.
const legacyProtocol = "2025-11-25"

// variants are the HTTP transports, plus streamable HTTP pinned to the
// session-based protocol.
var variants = []struct {
	name, transport, protocol string
}{
	{"http", config.TransportHTTP, ""},
	{"http-sessions", config.TransportHTTP, legacyProtocol},
	{"sse", config.TransportSSE, ""},
}

func TestPool_Concurrency_NoCrossTalk(t *testing.T) {
	t.Parallel()
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			tr := v.transport
			ctx := contractstest.Ctx(t)
			run := workertest.StartDemo(t, demoserver.Options{}, tr)
			p := newPool(t, upstream.Options{ProtocolVersion: v.protocol}, nil)
			srv := httpServer("demo", tr, run.URL)

			const calls, tokens = 100, 20
			var mismatches, failures atomic.Int64
			var wg sync.WaitGroup
			for i := range calls {
				wg.Go(func() {
					token := fmt.Sprintf("Bearer user-%02d", i%tokens)
					got, err := whoami(ctx, p, srv, token)
					switch {
					case err != nil:
						failures.Add(1)
						t.Errorf("call %d: %v", i, err)
					case got != token:
						mismatches.Add(1)
					}
				})
			}
			wg.Wait()
			if n := mismatches.Load(); n != 0 {
				t.Errorf("%d of %d calls saw another caller's token", n, calls)
			}
			if failures.Load() != 0 {
				t.FailNow()
			}
			seen := map[string]int{}
			for _, a := range run.Recorder.Authorizations() {
				seen[a]++
			}
			for a := range seen {
				if !strings.HasPrefix(a, "Bearer user-") {
					t.Errorf("upstream saw Authorization %q", a)
				}
			}
			if len(seen) != tokens {
				t.Errorf("upstream saw %d distinct tokens, want %d", len(seen), tokens)
			}
			if st := p.Stats(); st.Clients != tokens || st.Connects != tokens {
				t.Errorf("Stats = %+v, want one client per token, each connected once", st)
			}
			// Where the upstream keeps sessions, each belongs to one token.
			sessions := map[string]map[string]bool{}
			for _, h := range run.Recorder.Requests() {
				if id := h.Get("Mcp-Session-Id"); id != "" {
					if sessions[id] == nil {
						sessions[id] = map[string]bool{}
					}
					sessions[id][h.Get("Authorization")] = true
				}
			}
			for id, auths := range sessions {
				if len(auths) != 1 {
					t.Errorf("session %s was used with %d tokens", id, len(auths))
				}
			}
			if v.protocol == legacyProtocol && len(sessions) != tokens {
				t.Errorf("%d sessions, want one per token", len(sessions))
			}
			checkHeaders(t, run.Recorder)
		})
	}
}

func TestPool_ReusesClients(t *testing.T) {
	t.Parallel()
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			tr := v.transport
			ctx := contractstest.Ctx(t)
			run := workertest.StartDemo(t, demoserver.Options{}, tr)
			p := newPool(t, upstream.Options{ProtocolVersion: v.protocol}, nil)
			srv := httpServer("demo", tr, run.URL)

			if _, err := whoami(ctx, p, srv, "Bearer a"); err != nil {
				t.Fatal(err)
			}
			first := run.Recorder.Len()
			if _, err := whoami(ctx, p, srv, "Bearer a"); err != nil {
				t.Fatal(err)
			}
			if n := run.Recorder.Len() - first; n != 1 {
				t.Errorf("second call made %d upstream requests, want 1 (no new handshake)", n)
			}
			if _, err := whoami(ctx, p, srv, "Bearer b"); err != nil {
				t.Fatal(err)
			}
			if st := p.Stats(); st.Connects != 2 || st.Clients != 2 {
				t.Errorf("Stats = %+v, want a client per token", st)
			}
		})
	}
}

func TestPool_Unauthorized(t *testing.T) {
	t.Parallel()
	for _, tr := range httpTransports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			ctx := contractstest.Ctx(t)
			run, p, srv := demoPool(t, demoserver.Options{RequireToken: "Bearer good"}, tr)

			_, err := whoami(ctx, p, srv, "Bearer bad")
			var ue *upstream.Error
			if !errors.As(err, &ue) || ue.Wire.Code != contracts.CodeUpstreamUnauthorized {
				t.Fatalf("err = %v, want upstream_unauthorized", err)
			}
			base := strings.TrimSuffix(run.URL, "/mcp")
			base = strings.TrimSuffix(base, "/sse")
			want := `Bearer realm="demo", resource_metadata="` + base + demoserver.PathResourceMetadata + `"`
			if ue.Wire.WWWAuthenticate != want {
				t.Errorf("WWWAuthenticate = %q, want %q", ue.Wire.WWWAuthenticate, want)
			}
			if ue.Wire.Retryable {
				t.Error("upstream_unauthorized is retryable")
			}
			if strings.Contains(ue.Error(), "bad") || strings.Contains(ue.Detail, "Bearer bad") {
				t.Errorf("error shows the token: %q / %q", ue.Error(), ue.Detail)
			}
			wantWhoami(t, ctx, p, srv, "Bearer good", "Bearer good")
			if st := p.Stats(); st.Clients != 1 {
				t.Errorf("Clients = %d, want 1: a client whose handshake failed is not kept", st.Clients)
			}
		})
	}
}

func TestPool_Timeout(t *testing.T) {
	t.Parallel()
	for tr, newServer := range everyTransport() {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t)
			p := newPool(t, upstream.Options{}, nil)
			// Connect first, so that the deadline hits the call itself.
			if _, err := whoami(contractstest.Ctx(t), p, srv, "Bearer a"); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(contractstest.Ctx(t), 200*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := p.CallTool(ctx, srv, contracts.NewToken("Bearer a"), demoserver.ToolSlow, json.RawMessage(`{"ms": 5000}`))
			if code := wireCode(err); code != contracts.CodeUpstreamTimeout {
				t.Fatalf("err = %v, want upstream_timeout", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("timed out after %s, want about 200ms", d)
			}
			// The client survives a timed-out call.
			if _, err := whoami(contractstest.Ctx(t), p, srv, "Bearer a"); err != nil {
				t.Fatalf("call after a timeout: %v", err)
			}
		})
	}
}

func TestPool_Results(t *testing.T) {
	t.Parallel()
	for tr, newServer := range everyTransport() {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			ctx := contractstest.Ctx(t)
			srv := newServer(t)
			p := newPool(t, upstream.Options{}, nil)
			tok := contracts.NewToken("Bearer a")

			raw, err := p.CallTool(ctx, srv, tok, demoserver.ToolEcho, json.RawMessage(`{"text":"héllo"}`))
			if err != nil {
				t.Fatalf("echo: %v", err)
			}
			if r := decodeResult(t, raw); r.IsError || len(r.Content) != 1 || r.Content[0].Text != "héllo" {
				t.Errorf("echo result %s", raw)
			}

			raw, err = p.CallTool(ctx, srv, tok, demoserver.ToolFail, nil)
			if err != nil {
				t.Fatalf("fail: an isError result must be a result, got %v", err)
			}
			if r := decodeResult(t, raw); !r.IsError || r.Content[0].Text != demoserver.FailText {
				t.Errorf("fail result %s", raw)
			}

			_, err = p.CallTool(ctx, srv, tok, "no-such-tool", nil)
			if code := wireCode(err); code != contracts.CodeUnknownTool {
				t.Errorf("unknown tool: err = %v, want unknown_tool", err)
			}

			srv.DisallowedTools = []string{demoserver.ToolFail}
			raw, err = p.ListTools(ctx, srv, tok)
			if err != nil {
				t.Fatalf("ListTools: %v", err)
			}
			var tools []struct {
				Name string `json:"name"`
			}
			if err := json.Unmarshal(raw, &tools); err != nil {
				t.Fatalf("tools %s: %v", raw, err)
			}
			var names []string
			for _, tool := range tools {
				names = append(names, tool.Name)
			}
			slices.Sort(names)
			if want := []string{demoserver.ToolAsk, demoserver.ToolBig, demoserver.ToolEcho, demoserver.ToolSample, demoserver.ToolSlow, demoserver.ToolTouch, demoserver.ToolWhoami}; !slices.Equal(names, want) {
				t.Errorf("tools = %v, want %v", names, want)
			}
		})
	}
}

func TestPool_IdleEviction(t *testing.T) {
	t.Parallel()
	ctx := contractstest.Ctx(t)
	run := workertest.StartDemo(t, demoserver.Options{}, config.TransportSSE)
	p := newPool(t, upstream.Options{IdleTTL: 50 * time.Millisecond, ReapInterval: 10 * time.Millisecond}, nil)
	srv := httpServer("demo", config.TransportSSE, run.URL)
	if _, err := whoami(ctx, p, srv, "Bearer a"); err != nil {
		t.Fatal(err)
	}
	contractstest.Eventually(t, "the idle client to be closed", func() bool { return p.Stats().Clients == 0 })
	if st := p.Stats(); st.Evictions != 1 {
		t.Errorf("Evictions = %d, want 1", st.Evictions)
	}
	if _, err := whoami(ctx, p, srv, "Bearer a"); err != nil {
		t.Fatalf("call after eviction: %v", err)
	}
	if st := p.Stats(); st.Connects != 2 {
		t.Errorf("Connects = %d, want 2", st.Connects)
	}
}

func TestPool_MaxClients(t *testing.T) {
	t.Parallel()
	t.Run("the least recently used idle client makes room", func(t *testing.T) {
		t.Parallel()
		ctx := contractstest.Ctx(t)
		run := workertest.StartDemo(t, demoserver.Options{}, config.TransportSSE)
		p := newPool(t, upstream.Options{MaxClients: 2}, nil)
		srv := httpServer("demo", config.TransportSSE, run.URL)
		for _, tok := range []string{"Bearer a", "Bearer b", "Bearer a", "Bearer c"} {
			wantWhoami(t, ctx, p, srv, tok, tok)
			if n := p.Stats().Clients; n > 2 {
				t.Fatalf("%d clients, want at most 2", n)
			}
		}
		// b was the least recently used: a is still pooled.
		before := p.Stats().Connects
		if _, err := whoami(ctx, p, srv, "Bearer a"); err != nil {
			t.Fatal(err)
		}
		if st := p.Stats(); st.Connects != before || st.Evictions != 1 {
			t.Errorf("Stats = %+v, want a reused and one eviction", st)
		}
	})
	t.Run("busy clients are not evicted", func(t *testing.T) {
		t.Parallel()
		ctx := contractstest.Ctx(t)
		run := workertest.StartDemo(t, demoserver.Options{}, config.TransportHTTP)
		p := newPool(t, upstream.Options{MaxClients: 1}, nil)
		srv := httpServer("demo", config.TransportHTTP, run.URL)
		slowDone := make(chan error, 1)
		go func() {
			_, err := p.CallTool(ctx, srv, contracts.NewToken("Bearer a"), demoserver.ToolSlow, json.RawMessage(`{"ms": 500}`))
			slowDone <- err
		}()
		contractstest.Eventually(t, "the slow call to start", func() bool { return p.Stats().Connects == 1 && run.Recorder.Len() >= 2 })
		_, err := whoami(ctx, p, srv, "Bearer b")
		if code := wireCode(err); code != contracts.CodeOverloaded {
			t.Errorf("err = %v, want overloaded", err)
		}
		if err := <-slowDone; err != nil {
			t.Errorf("slow call: %v", err)
		}
	})
}

func TestPool_SSEStreamLost(t *testing.T) {
	t.Parallel()
	ctx := contractstest.Ctx(t)
	run, p, srv := demoPool(t, demoserver.Options{}, config.TransportSSE)
	if _, err := whoami(ctx, p, srv, "Bearer a"); err != nil {
		t.Fatal(err)
	}
	if err := run.Close(ctx); err != nil {
		t.Fatal(err)
	}
	contractstest.Eventually(t, "the broken client to leave the pool", func() bool { return p.Stats().Clients == 0 })
	_, err := whoami(ctx, p, srv, "Bearer a")
	if code := wireCode(err); code != contracts.CodeUpstreamError {
		t.Errorf("err = %v, want upstream_error", err)
	}
}

// TestPool_SessionTerminated puts a proxy in front of a real demo server that
// answers the first tools/call with 404, as a server that lost its session
// does: the pool replaces the client and retries once.
func TestPool_SessionTerminated(t *testing.T) {
	t.Parallel()
	for _, protocol := range []string{"", legacyProtocol} {
		t.Run("protocol "+protocol, func(t *testing.T) {
			t.Parallel()
			testSessionTerminated(t, protocol)
		})
	}
}

func testSessionTerminated(t *testing.T, protocol string) {
	ctx := contractstest.Ctx(t)
	h, err := demoserver.NewHandler(demoserver.Options{}, demoserver.TransportHTTP)
	if err != nil {
		t.Fatal(err)
	}
	var refused atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && refused.Load() == 0 {
			body := new(bytes.Buffer)
			_, _ = body.ReadFrom(r.Body)
			r.Body.Close()
			if strings.Contains(body.String(), `"tools/call"`) && refused.CompareAndSwap(0, 1) {
				http.Error(w, "session not found", http.StatusNotFound)
				return
			}
			r.Body = readCloser{bytes.NewReader(body.Bytes())}
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { h.Close(context.Background()); ts.Close() })

	p := newPool(t, upstream.Options{ProtocolVersion: protocol}, nil)
	srv := httpServer("demo", config.TransportHTTP, ts.URL+demoserver.PathMCP)
	wantWhoami(t, ctx, p, srv, "Bearer a", "Bearer a")
	if refused.Load() != 1 {
		t.Fatal("the proxy refused nothing")
	}
	if st := p.Stats(); st.Connects != 2 || st.Clients != 1 {
		t.Errorf("Stats = %+v, want the client replaced once", st)
	}
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

func TestPool_Unreachable(t *testing.T) {
	t.Parallel()
	ts := httptest.NewServer(http.NotFoundHandler())
	url := ts.URL + "/mcp"
	ts.Close()
	p := newPool(t, upstream.Options{}, nil)
	for _, tr := range httpTransports {
		_, err := whoami(contractstest.Ctx(t), p, httpServer("gone-"+tr, tr, url), "Bearer a")
		var ue *upstream.Error
		if !errors.As(err, &ue) || ue.Wire.Code != contracts.CodeUpstreamError || !ue.Wire.Retryable {
			t.Errorf("%s: err = %v, want retryable upstream_error", tr, err)
		}
	}
	if st := p.Stats(); st.Clients != 0 || st.ConnectFailures != 2 {
		t.Errorf("Stats = %+v, want failed connections not kept", st)
	}
}

func TestPool_Close(t *testing.T) {
	t.Parallel()
	ctx := contractstest.Ctx(t)
	p := upstream.New(upstream.Options{})
	srv := stdioServer("local", "USER_TOKEN")
	for _, tok := range []string{"Bearer a", "Bearer b"} {
		if _, err := whoami(ctx, p, srv, tok); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Close took %s", d)
	}
	_, err := whoami(ctx, p, srv, "Bearer a")
	if code := wireCode(err); code != contracts.CodeOverloaded {
		t.Errorf("call after Close: err = %v, want overloaded", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// Over SSE a call's response comes on the stream, so abandoning it cancels
// nothing upstream: the pool sends notifications/cancelled (a POST after the
// call's own).
func TestPool_SSECancelsUpstream(t *testing.T) {
	t.Parallel()
	run, p, srv := demoPool(t, demoserver.Options{}, config.TransportSSE)
	if _, err := whoami(contractstest.Ctx(t), p, srv, "Bearer a"); err != nil {
		t.Fatal(err)
	}
	before := run.Recorder.Len()
	ctx, cancel := context.WithTimeout(contractstest.Ctx(t), 100*time.Millisecond)
	defer cancel()
	_, err := p.CallTool(ctx, srv, contracts.NewToken("Bearer a"), demoserver.ToolSlow, json.RawMessage(`{"ms": 5000}`))
	if code := wireCode(err); code != contracts.CodeUpstreamTimeout {
		t.Fatalf("err = %v, want upstream_timeout", err)
	}
	contractstest.Eventually(t, "the cancellation to reach the upstream", func() bool { return run.Recorder.Len() >= before+2 })
	last := run.Recorder.Entries()[before+1]
	if last.Method != http.MethodPost || last.Path != demoserver.PathMessage || last.Authorization != "Bearer a" {
		t.Errorf("after the call the upstream received %s %s with %q", last.Method, last.Path, last.Authorization)
	}
}

// Progress notifications reach the call that asked for them, and only it:
// concurrent calls of one user share a client, and each is told apart by
// its progress token.
func TestPool_CallTool_Progress(t *testing.T) {
	t.Parallel()
	for _, v := range append(variants, struct{ name, transport, protocol string }{"stdio", config.TransportStdio, ""}) {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			ctx := contractstest.Ctx(t)
			p := newPool(t, upstream.Options{ProtocolVersion: v.protocol}, nil)
			var srv *config.Server
			if v.transport == config.TransportStdio {
				srv = stdioServer("local", "")
			} else {
				srv = httpServer("demo", v.transport, workertest.StartDemo(t, demoserver.Options{}, v.transport).URL)
			}
			const calls = 3
			got := make([][]upstream.Progress, calls)
			var mu sync.Mutex
			var wg sync.WaitGroup
			for i := range calls {
				wg.Go(func() {
					raw, err := p.CallTool(ctx, srv, contracts.NewToken("Bearer same-user"), demoserver.ToolSlow,
						json.RawMessage(fmt.Sprintf(`{"ms": %d}`, 40+20*i)),
						upstream.WithProgress(func(pr upstream.Progress) {
							mu.Lock()
							got[i] = append(got[i], pr)
							mu.Unlock()
						}))
					if err != nil || !strings.HasPrefix(decodeResult(t, raw).Content[0].Text, "slept") {
						t.Errorf("call %d: %s, %v", i, raw, err)
					}
				})
			}
			wg.Wait()
			mu.Lock()
			defer mu.Unlock()
			// The last notification may be dispatched after the answer, when
			// it is dropped: the call has returned. On 2025-11-25 sessions
			// mcp-go's server queues a session's notifications in one channel
			// that every running call's response stream reads, so with
			// concurrent calls one may also go out on a stream that is ending,
			// and be lost (a call then sees a gap), or on another call's
			// stream, which the client reads concurrently with the call's own:
			// two of a call's steps can then arrive in either order. What a
			// call must never see is a step twice or a step that is not one of
			// its progress's. Every other transport keeps a call's steps in
			// order.
			least := 3
			if v.protocol == legacyProtocol {
				least = 2
			}
			for i, ps := range got {
				if len(ps) < least || len(ps) > 4 {
					t.Errorf("call %d got %d notifications: %+v", i, len(ps), ps)
					continue
				}
				if v.protocol == legacyProtocol {
					slices.SortFunc(ps, func(a, b upstream.Progress) int { return cmp.Compare(a.Progress, b.Progress) })
				}
				last := -1.0
				for n, pr := range ps {
					step := int(pr.Progress)
					if pr.Progress <= last || pr.Total == nil || *pr.Total != 4 || pr.Message != fmt.Sprintf("step %d of 4", step+1) {
						t.Errorf("call %d notification %d: %+v", i, n, pr)
					}
					last = pr.Progress
				}
			}
			if st := p.Stats(); st.Clients != 1 {
				t.Errorf("Clients = %d, want the calls to share one", st.Clients)
			}
		})
	}
}
