package demoserver_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/worker/demoserver"
	"github.com/toolbus/toolbus/worker/internal/workertest"
)

// do sends req and returns the response, its body closed.
func do(t *testing.T, req *http.Request) *http.Response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// start runs a demo server until the test ends, and checks that it closes
// without an error.
func start(t *testing.T, opts demoserver.Options, tr string) *demoserver.Running {
	t.Helper()
	run := workertest.StartDemo(t, opts, tr)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), contractstest.WaitTimeout)
		defer cancel()
		if err := run.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return run
}

// newClient returns an unstarted client for run with the given headers.
func newClient(t *testing.T, run *demoserver.Running, headers map[string]string) *client.Client {
	t.Helper()
	var (
		c   *client.Client
		err error
	)
	switch run.Transport {
	case demoserver.TransportHTTP:
		c, err = client.NewStreamableHttpClient(run.URL, transport.WithHTTPHeaders(headers))
	case demoserver.TransportSSE:
		c, err = client.NewSSEMCPClient(run.URL, transport.WithHeaders(headers))
	default:
		t.Fatalf("unknown transport %q", run.Transport)
	}
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func initialize(ctx context.Context, c *client.Client) error {
	if err := c.Start(ctx); err != nil {
		return err
	}
	req := mcp.InitializeRequest{}
	req.Params.ClientInfo = mcp.Implementation{Name: "demoserver-test", Version: "0"}
	_, err := c.Initialize(ctx, req)
	return err
}

func connect(t *testing.T, ctx context.Context, run *demoserver.Running, headers map[string]string) *client.Client {
	t.Helper()
	c := newClient(t, run, headers)
	if err := initialize(ctx, c); err != nil {
		t.Fatalf("initialize: %v", err)
	}
	return c
}

func call(ctx context.Context, c *client.Client, name string, args map[string]any) (*mcp.CallToolResult, error) {
	req := mcp.CallToolRequest{}
	req.Params.Name = name
	req.Params.Arguments = args
	return c.CallTool(ctx, req)
}

// onlyText returns the text of a result that has exactly one text content.
func onlyText(t *testing.T, res *mcp.CallToolResult) string {
	t.Helper()
	if len(res.Content) != 1 {
		t.Fatalf("got %d contents, want 1: %+v", len(res.Content), res.Content)
	}
	tc, ok := mcp.AsTextContent(res.Content[0])
	if !ok {
		t.Fatalf("content is %T, want text", res.Content[0])
	}
	return tc.Text
}

// eachTransport runs test, as a parallel subtest, against a demo server
// with opts on each HTTP transport.
func eachTransport(t *testing.T, opts demoserver.Options, test func(t *testing.T, ctx context.Context, run *demoserver.Running)) {
	for _, tr := range []string{demoserver.TransportHTTP, demoserver.TransportSSE} {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			test(t, contractstest.Ctx(t), start(t, opts, tr))
		})
	}
}

func TestStart_Tools(t *testing.T) {
	eachTransport(t, demoserver.Options{}, func(t *testing.T, ctx context.Context, run *demoserver.Running) {
		wantSuffix := map[string]string{"http": "/mcp", "sse": "/sse"}[run.Transport]
		if !strings.HasPrefix(run.URL, "http://127.0.0.1:") || !strings.HasSuffix(run.URL, wantSuffix) {
			t.Errorf("URL = %q", run.URL)
		}
		c := connect(t, ctx, run, map[string]string{"Authorization": "Bearer x", "X-Extra": "extra"})

		t.Run("echo returns the text only", func(t *testing.T) {
			res, err := call(ctx, c, demoserver.ToolEcho, map[string]any{"text": "hello"})
			if err != nil {
				t.Fatal(err)
			}
			if got := onlyText(t, res); got != "hello" || res.IsError {
				t.Errorf("echo = %q (isError %v), want %q", got, res.IsError, "hello")
			}
		})
		t.Run("whoami returns the Authorization header", func(t *testing.T) {
			res, err := call(ctx, c, demoserver.ToolWhoami, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := onlyText(t, res); got != "Bearer x" {
				t.Errorf("whoami = %q, want %q", got, "Bearer x")
			}
			sc, _ := json.Marshal(res.StructuredContent)
			if string(sc) != `{"authorization":"Bearer x"}` {
				t.Errorf("structuredContent = %s", sc)
			}
		})
		t.Run("fail returns a tool error", func(t *testing.T) {
			res, err := call(ctx, c, demoserver.ToolFail, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := onlyText(t, res); !res.IsError || got != demoserver.FailText {
				t.Errorf("fail = %q (isError %v)", got, res.IsError)
			}
		})
		t.Run("slow sleeps and answers", func(t *testing.T) {
			res, err := call(ctx, c, demoserver.ToolSlow, map[string]any{"ms": 5})
			if err != nil {
				t.Fatal(err)
			}
			if got := onlyText(t, res); got != "slept 5ms" {
				t.Errorf("slow = %q", got)
			}
		})
		t.Run("big returns that many bytes", func(t *testing.T) {
			res, err := call(ctx, c, demoserver.ToolBig, map[string]any{"bytes": 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			if got := onlyText(t, res); len(got) != 1<<20 || strings.Trim(got, "x") != "" {
				t.Errorf("big returned %d bytes that are not all 'x'", len(got))
			}
			res, err = call(ctx, c, demoserver.ToolBig, map[string]any{"bytes": demoserver.MaxBigBytes + 1})
			if err != nil {
				t.Fatal(err)
			}
			if !res.IsError {
				t.Error("big over MaxBigBytes is not a tool error")
			}
		})
		t.Run("recorder saw every request with its headers", func(t *testing.T) {
			auths := run.Recorder.Authorizations()
			if len(auths) < 2 {
				t.Fatalf("recorded %d requests, want at least 2", len(auths))
			}
			for i, a := range auths {
				if a != "Bearer x" {
					t.Errorf("request %d Authorization = %q", i, a)
				}
			}
			for i, h := range run.Recorder.Requests() {
				if h.Get("X-Extra") != "extra" {
					t.Errorf("request %d X-Extra = %q", i, h.Get("X-Extra"))
				}
			}
		})
	})
}

func TestStart_Progress(t *testing.T) {
	eachTransport(t, demoserver.Options{}, func(t *testing.T, ctx context.Context, run *demoserver.Running) {
		c := connect(t, ctx, run, nil)
		var (
			mu       sync.Mutex
			progress []float64
		)
		c.OnNotification(func(n mcp.JSONRPCNotification) {
			if n.Method != string(mcp.MethodNotificationProgress) {
				return
			}
			if n.Params.AdditionalFields["progressToken"] != "tok" {
				t.Errorf("progress token = %v", n.Params.AdditionalFields["progressToken"])
			}
			p, _ := n.Params.AdditionalFields["progress"].(float64)
			mu.Lock()
			progress = append(progress, p)
			mu.Unlock()
		})
		req := mcp.CallToolRequest{}
		req.Params.Name = demoserver.ToolSlow
		req.Params.Arguments = map[string]any{"ms": 8}
		req.Params.Meta = &mcp.Meta{ProgressToken: "tok"}
		if _, err := c.CallTool(ctx, req); err != nil {
			t.Fatal(err)
		}
		// The server sends every notification before the response, but
		// the client may dispatch them after CallTool returns.
		waitFor(t, ctx, func() bool { mu.Lock(); defer mu.Unlock(); return len(progress) >= 4 })
		mu.Lock()
		defer mu.Unlock()
		if want := []float64{0, 1, 2, 3}; !equal(progress, want) {
			t.Errorf("progress = %v, want %v", progress, want)
		}
	})
}

func waitFor(t *testing.T, ctx context.Context, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("condition not met: %v", ctx.Err())
		case <-tick.C:
		}
	}
}

func equal(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestStart_CancelAndClose(t *testing.T) {
	eachTransport(t, demoserver.Options{Delay: time.Minute}, func(t *testing.T, ctx context.Context, run *demoserver.Running) {
		c := connect(t, ctx, run, nil)

		t.Run("a cancelled call returns early", func(t *testing.T) {
			callCtx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			defer cancel()
			if _, err := call(callCtx, c, demoserver.ToolSlow, map[string]any{"ms": 60_000}); err == nil {
				t.Fatal("slow returned no error")
			}
			callCtx2, cancel2 := context.WithTimeout(ctx, 50*time.Millisecond)
			defer cancel2()
			if _, err := call(callCtx2, c, demoserver.ToolEcho, map[string]any{"text": "x"}); err == nil {
				t.Fatal("delayed echo returned no error")
			}
		})
		t.Run("Close interrupts a running call and ends streams", func(t *testing.T) {
			errc := make(chan error, 1)
			go func() {
				_, err := call(ctx, c, demoserver.ToolSlow, map[string]any{"ms": 60_000})
				errc <- err
			}()
			waitFor(t, ctx, func() bool {
				for _, e := range run.Recorder.Entries() {
					if e.Method == http.MethodPost {
						return true
					}
				}
				return false
			})
			closeCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			if err := run.Close(closeCtx); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if run.Transport == demoserver.TransportHTTP {
				// Streamable HTTP answers on the POST; SSE's answer
				// would go to the closed stream, so the SSE client only
				// learns from its own context.
				select {
				case err := <-errc:
					if err == nil {
						t.Error("slow returned no error after Close")
					}
				case <-ctx.Done():
					t.Fatal("call still running after Close")
				}
			}
			if err := run.Close(closeCtx); err != nil {
				t.Errorf("second Close: %v", err)
			}
		})
	})
}

func TestStart_RequireToken(t *testing.T) {
	const token = "Bearer s3cret"
	eachTransport(t, demoserver.Options{RequireToken: token}, func(t *testing.T, ctx context.Context, run *demoserver.Running) {
		t.Run("a wrong token is refused with ErrAuthorizationRequired", func(t *testing.T) {
			err := initialize(ctx, newClient(t, run, map[string]string{"Authorization": "Bearer wrong"}))
			if !errors.Is(err, transport.ErrAuthorizationRequired) {
				t.Fatalf("err = %v, want ErrAuthorizationRequired", err)
			}
			var authErr *transport.AuthorizationRequiredError
			if !errors.As(err, &authErr) || !strings.HasSuffix(authErr.ResourceMetadataURL, demoserver.PathResourceMetadata) {
				t.Errorf("resource metadata URL not found in %v", err)
			}
			if got := run.Recorder.Values("Authorization"); len(got) == 0 || got[0] != "Bearer wrong" {
				t.Errorf("recorded %q, want the refused request first", got)
			}
		})
		t.Run("the right token is accepted", func(t *testing.T) {
			c := connect(t, ctx, run, map[string]string{"Authorization": token})
			res, err := call(ctx, c, demoserver.ToolWhoami, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := onlyText(t, res); got != token {
				t.Errorf("whoami = %q", got)
			}
		})
		t.Run("401 carries the challenge and a JSON body", func(t *testing.T) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, run.URL, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			base := strings.TrimSuffix(run.URL, map[string]string{"http": "/mcp", "sse": "/sse"}[run.Transport])
			want := `Bearer realm="demo", resource_metadata="` + base + `/.well-known/oauth-protected-resource"`
			if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != want {
				t.Errorf("got %d %q, want 401 %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), want)
			}
			var body map[string]string
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body["error"] == "" {
				t.Errorf("body %v, %v", body, err)
			}

			mreq, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+demoserver.PathResourceMetadata, nil)
			mresp, err := http.DefaultClient.Do(mreq)
			if err != nil {
				t.Fatal(err)
			}
			defer mresp.Body.Close()
			var meta map[string]any
			if err := json.NewDecoder(mresp.Body).Decode(&meta); err != nil || meta["resource"] != run.URL {
				t.Errorf("metadata %v, %v", meta, err)
			}
		})
	})
}

func TestHandler_LimitsBodyAndPath(t *testing.T) {
	t.Parallel()
	ctx := contractstest.Ctx(t)
	run := start(t, demoserver.Options{MaxBodyBytes: 1024}, demoserver.TransportHTTP)

	body := `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"` + strings.Repeat("a", 2048) + `"}}`
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, run.URL, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp := do(t, req)
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("oversized body: status %d, want 400", resp.StatusCode)
	}

	req, _ = http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(run.URL, "/mcp")+"/other", strings.NewReader("{}"))
	resp = do(t, req)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("other path: status %d, want 404", resp.StatusCode)
	}
}

func TestNewHandler_UnknownTransport(t *testing.T) {
	t.Parallel()
	if _, err := demoserver.NewHandler(demoserver.Options{}, "stdio"); err == nil {
		t.Error("NewHandler(stdio) returned no error")
	}
}

func TestStart_StopsWhenContextEnds(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(contractstest.Ctx(t))
	run, err := demoserver.Start(ctx, demoserver.Options{}, demoserver.TransportSSE)
	if err != nil {
		t.Fatal(err)
	}
	connect(t, contractstest.Ctx(t), run, nil) // an open SSE stream must not block shutdown
	cancel()
	// Close waits for the shutdown the context started.
	if err := run.Close(contractstest.Ctx(t)); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if resp, err := http.Get(run.URL); err == nil {
		resp.Body.Close()
		t.Error("server still answers after its context ended")
	}
}

func TestServeStdio(t *testing.T) {
	// Not parallel: t.Setenv, and mcp-go's stdio session is package-level.
	t.Setenv("DEMO_TEST_AUTH", "Bearer stdio")
	ctx := contractstest.Ctx(t)

	clientToServerR, clientToServerW := io.Pipe()
	serverToClientR, serverToClientW := io.Pipe()
	served := make(chan error, 1)
	go func() {
		err := demoserver.ServeStdio(ctx, demoserver.Options{StdioAuthEnv: "DEMO_TEST_AUTH"}, clientToServerR, serverToClientW)
		_ = serverToClientW.Close()
		served <- err
	}()

	c := client.NewClient(transport.NewIO(serverToClientR, clientToServerW, nil))
	if err := initialize(ctx, c); err != nil {
		t.Fatalf("initialize: %v", err)
	}
	res, err := call(ctx, c, demoserver.ToolWhoami, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := onlyText(t, res); got != "Bearer stdio" {
		t.Errorf("whoami = %q, want %q", got, "Bearer stdio")
	}
	res, err = call(ctx, c, demoserver.ToolEcho, map[string]any{"text": "over stdio"})
	if err != nil {
		t.Fatal(err)
	}
	if got := onlyText(t, res); got != "over stdio" {
		t.Errorf("echo = %q", got)
	}

	// Closing the client closes the server's input: ServeStdio returns nil.
	_ = c.Close()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("ServeStdio: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("ServeStdio did not return after its input closed")
	}
	_ = clientToServerR.Close()
}

func TestMain_HTTP(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(contractstest.Ctx(t))
	defer cancel()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- demoserver.Main(ctx, []string{"--transport", "http", "--listen", "127.0.0.1:0", "--require-token", "Bearer m"}, outW)
		_ = outW.Close()
	}()
	line, err := bufio.NewReader(outR).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the banner: %v", err)
	}
	const prefix = "demo MCP server (http) listening on "
	if !strings.HasPrefix(line, prefix) {
		t.Fatalf("banner = %q", line)
	}
	url := strings.TrimSpace(strings.TrimPrefix(line, prefix))
	go func() { _, _ = io.Copy(io.Discard, outR) }()

	c, err := client.NewStreamableHttpClient(url, transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer m"}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := initialize(ctx, c); err != nil {
		t.Fatalf("initialize: %v", err)
	}
	if _, err := call(ctx, c, demoserver.ToolEcho, map[string]any{"text": "hi"}); err != nil {
		t.Fatal(err)
	}
	cancel()
	contractstest.WaitReturn(t, "Main", done)
}

// --stateless serves streamable HTTP without sessions.
func TestMain_HTTPStateless(t *testing.T) {
	t.Parallel()
	for _, stateless := range []bool{false, true} {
		ctx, cancel := context.WithCancel(contractstest.Ctx(t))
		outR, outW := io.Pipe()
		done := make(chan error, 1)
		args := []string{"--transport", "http", "--listen", "127.0.0.1:0"}
		if stateless {
			args = append(args, "--stateless")
		}
		go func() {
			done <- demoserver.Main(ctx, args, outW)
			_ = outW.Close()
		}()
		line, err := bufio.NewReader(outR).ReadString('\n')
		if err != nil {
			t.Fatalf("reading the banner: %v", err)
		}
		url := strings.TrimSpace(strings.TrimPrefix(line, "demo MCP server (http) listening on "))
		go func() { _, _ = io.Copy(io.Discard, outR) }()
		c, err := client.NewStreamableHttpClient(url, transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer m"}))
		if err != nil {
			t.Fatal(err)
		}
		req := mcp.InitializeRequest{}
		req.Params.ProtocolVersion = "2025-11-25"
		if _, err := c.Initialize(ctx, req); err != nil {
			t.Fatalf("initialize: %v", err)
		}
		if got := c.GetSessionId(); (got == "") != stateless {
			t.Errorf("stateless %v: session ID %q", stateless, got)
		}
		if _, err := call(ctx, c, demoserver.ToolEcho, map[string]any{"text": "hi"}); err != nil {
			t.Fatal(err)
		}
		_ = c.Close()
		cancel()
		contractstest.WaitReturn(t, "Main", done)
	}
}

func TestMain_BadFlags(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := demoserver.Main(contractstest.Ctx(t), []string{"--transport", "carrier-pigeon"}, &out); err == nil {
		t.Error("unknown transport accepted")
	}
	if err := demoserver.Main(contractstest.Ctx(t), []string{"--nope"}, &out); err == nil {
		t.Error("unknown flag accepted")
	}
}

func TestRecorder(t *testing.T) {
	t.Parallel()
	ctx := contractstest.Ctx(t)
	rec := &demoserver.Recorder{}
	run := start(t, demoserver.Options{Recorder: rec}, demoserver.TransportHTTP)
	if run.Recorder != rec {
		t.Fatal("Start did not use the given recorder")
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, run.URL, nil)
	req.Header.Set("Authorization", "Bearer r")
	req.Header.Set("X-Tenant", "t1")
	do(t, req)

	entries := rec.Entries()
	if len(entries) != 1 || entries[0].Method != http.MethodGet || entries[0].Path != "/mcp" || entries[0].Authorization != "Bearer r" {
		t.Fatalf("entries = %+v", entries)
	}
	entries[0].Header.Set("X-Tenant", "changed")
	if got := rec.Values("X-Tenant"); len(got) != 1 || got[0] != "t1" {
		t.Errorf("Values(X-Tenant) = %q; the recorder must hand out copies", got)
	}
	rec.Reset()
	if rec.Len() != 0 || len(rec.Requests()) != 0 || len(rec.Authorizations()) != 0 {
		t.Error("Reset left entries")
	}
}
