package mcpserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/ingress/auth"
	"github.com/toolbus/toolbus/ingress/devmode"
	"github.com/toolbus/toolbus/ingress/dispatch"
	"github.com/toolbus/toolbus/ingress/httpapi"
	"github.com/toolbus/toolbus/ingress/jobs"
	"github.com/toolbus/toolbus/ingress/mcpserver"
	"github.com/toolbus/toolbus/worker/demoserver"
)

// Keys of the test gateway.
const (
	masterKey = "sk-master"
	teamAKey  = "sk-team-a" // demo only; tools demo-echo and demo-whoami
	userToken = "Bearer user-token-5678"
)

const testTimeout = 30 * time.Second

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// logBuffer collects every log line of the gateway (ingress and workers).
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// gateway is the whole system in one test: the dev environment (embedded
// NATS with JetStream, workers, the demo server), more real upstreams, and
// the real router (with the MCP endpoint) behind a real HTTP server on
// loopback.
type gateway struct {
	URL       string
	Env       *devmode.Env
	Cfg       *config.File
	Logs      *logBuffer
	Upstreams map[string]*demoserver.Running
	// Calls counts the tool calls of the "counted" upstream.
	Calls *demoserver.Calls
}

// startGateway configures these servers besides "demo":
//
//	counted  http, counts its calls (for cancellation)
//	locked   http, answers 401 unless Authorization is "Bearer good"
//	legacy   sse
//	noauth   http, auth: none
//
// Each change is applied to the configuration before anything starts.
func startGateway(t *testing.T, changes ...func(*config.File)) *gateway {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	g := &gateway{Logs: &logBuffer{}, Upstreams: map[string]*demoserver.Running{}, Calls: &demoserver.Calls{}}
	for name, spec := range map[string]struct {
		transport string
		opts      demoserver.Options
	}{
		"counted": {demoserver.TransportHTTP, demoserver.Options{Calls: g.Calls}},
		"locked":  {demoserver.TransportHTTP, demoserver.Options{RequireToken: "Bearer good"}},
		"legacy":  {demoserver.TransportSSE, demoserver.Options{}},
		"noauth":  {demoserver.TransportHTTP, demoserver.Options{}},
	} {
		up, err := demoserver.Start(ctx, spec.opts, spec.transport)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = up.Close(context.Background()) })
		g.Upstreams[name] = up
	}
	g.Cfg = &config.File{
		MCPServers: map[string]*config.Server{
			"counted": {URL: g.Upstreams["counted"].URL},
			"locked":  {URL: g.Upstreams["locked"].URL},
			"legacy":  {URL: g.Upstreams["legacy"].URL, Transport: "sse"},
			"noauth":  {URL: g.Upstreams["noauth"].URL, Auth: config.AuthNone, DisallowedTools: []string{"fail"}},
		},
		Keys: []config.Key{
			{Name: "master", Key: masterKey},
			{Name: "team-a", Key: teamAKey, Servers: []string{"demo"}, Tools: []string{"demo-echo", "demo-whoami"}},
		},
	}
	for _, change := range changes {
		change(g.Cfg)
	}
	env, err := devmode.Start(ctx, g.Cfg, zerolog.New(g.Logs))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = env.Stop(stopCtx)
	})
	g.Env = env
	g.Upstreams["demo"] = env.Demo
	g.URL = g.newIngress(t)
	return g
}

// newIngress starts one more ingress (router with the MCP endpoint,
// dispatcher, job store, HTTP server on loopback) on the gateway's NATS, as
// another replica would, and returns its URL.
func (g *gateway) newIngress(t *testing.T) string {
	t.Helper()
	log := zerolog.New(g.Logs)
	keys, err := auth.New(g.Cfg.Keys, g.Cfg.Ingress.Separator())
	if err != nil {
		t.Fatal(err)
	}
	d, err := dispatch.New(g.Env.Conn, g.Env.Sealer, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	store, err := jobs.New(g.Env.Conn, g.Env.Sealer, g.Cfg.Jobs, log)
	if err != nil {
		t.Fatal(err)
	}
	catalog := dispatch.NewCatalog(d, time.Minute)
	mcpSrv, err := mcpserver.New(mcpserver.Options{
		Config: g.Cfg, Dispatcher: d, Catalog: catalog, Jobs: store, Conn: g.Env.Conn, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	router := httpapi.New(httpapi.Options{
		Config: g.Cfg, Keys: keys, Dispatcher: d, Catalog: catalog, Jobs: store, Logger: log, MCP: mcpSrv,
	})
	srv := httptest.NewServer(router)
	t.Cleanup(func() {
		mcpSrv.Close()
		srv.Close()
	})
	return srv.URL
}

// headers are the gateway key and, if token is set, the user's token.
func headers(key, token string) map[string]string {
	h := map[string]string{"x-litellm-key": key}
	if token != "" {
		h["Authorization"] = token
	}
	return h
}

// notifications collects the notifications a client receives.
type notifications struct {
	mu   sync.Mutex
	list []mcp.JSONRPCNotification
}

func (n *notifications) add(m mcp.JSONRPCNotification) {
	n.mu.Lock()
	n.list = append(n.list, m)
	n.mu.Unlock()
}

func (n *notifications) of(method string) []mcp.JSONRPCNotification {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []mcp.JSONRPCNotification
	for _, m := range n.list {
		if m.Method == method {
			out = append(out, m)
		}
	}
	return out
}

// connect returns an initialized mcp-go streamable HTTP client of url.
func connect(t *testing.T, url string, h map[string]string) (*client.Client, *notifications) {
	t.Helper()
	c, err := client.NewStreamableHttpClient(url, transport.WithHTTPHeaders(h))
	if err != nil {
		t.Fatal(err)
	}
	return initClient(t, c)
}

// connectSSE returns an initialized mcp-go legacy SSE client of url.
func connectSSE(t *testing.T, url string, h map[string]string) (*client.Client, *notifications) {
	t.Helper()
	c, err := client.NewSSEMCPClient(url, transport.WithHeaders(h))
	if err != nil {
		t.Fatal(err)
	}
	return initClient(t, c)
}

func initClient(t *testing.T, c *client.Client) (*client.Client, *notifications) {
	t.Helper()
	t.Cleanup(func() { _ = c.Close() })
	n := &notifications{}
	c.OnNotification(n.add)
	ctx := testCtx(t)
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	req := mcp.InitializeRequest{}
	req.Params.ClientInfo = mcp.Implementation{Name: "mcpserver-test", Version: "0"}
	if _, err := c.Initialize(ctx, req); err != nil {
		t.Fatalf("initialize: %v", err)
	}
	return c, n
}

// rawResponse is an HTTP answer.
type rawResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

// post sends body to url with headers, as a client that accepts JSON and SSE.
func post(t *testing.T, url string, h map[string]string, body string) *rawResponse {
	t.Helper()
	req, err := http.NewRequestWithContext(testCtx(t), http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range h {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return &rawResponse{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

// errorCode returns error.code of a JSON error body.
func (r *rawResponse) errorCode(t *testing.T) string {
	t.Helper()
	var body struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatalf("not a JSON error body (%v): %s", err, r.Body)
	}
	return body.Error.Code
}

// text returns the first text content of a tool result.
func text(t *testing.T, res *mcp.CallToolResult) string {
	t.Helper()
	if res == nil || len(res.Content) == 0 {
		t.Fatalf("no content in %+v", res)
	}
	tc, ok := res.Content[0].(mcp.TextContent)
	if !ok {
		t.Fatalf("first content is %T", res.Content[0])
	}
	return tc.Text
}

func callTool(ctx context.Context, c *client.Client, name string, args map[string]any) (*mcp.CallToolResult, error) {
	var req mcp.CallToolRequest
	req.Params.Name = name
	req.Params.Arguments = args
	return c.CallTool(ctx, req)
}

// waitFor polls cond until it holds or the test's bound passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// recordBus records every raw message on toolbus subjects and inboxes.
func (g *gateway) recordBus(t *testing.T) (*contractstest.Recording, *contractstest.Recording) {
	return contractstest.RecordAll(t, g.Env.Conn, "toolbus.>"), contractstest.RecordAll(t, g.Env.Conn, "_INBOX.>")
}

func newStreamable(url string, h map[string]string) (*client.Client, error) {
	return client.NewStreamableHttpClient(url, transport.WithHTTPHeaders(h))
}
