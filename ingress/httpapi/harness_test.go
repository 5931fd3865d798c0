package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/ingress/auth"
	"github.com/toolbus/toolbus/ingress/devmode"
	"github.com/toolbus/toolbus/ingress/dispatch"
	"github.com/toolbus/toolbus/ingress/httpapi"
	"github.com/toolbus/toolbus/ingress/jobs"
	"github.com/toolbus/toolbus/worker/demoserver"
)

// stdioEnv makes the test binary serve the demo server over stdio, so a
// stdio upstream in these tests is a real child process.
const (
	stdioEnv      = "TOOLBUS_TEST_STDIO_SERVER"
	stdioTokenEnv = "DEMO_TOKEN"
)

func TestMain(m *testing.M) {
	if os.Getenv(stdioEnv) == "1" {
		err := demoserver.ServeStdio(context.Background(), demoserver.Options{StdioAuthEnv: stdioTokenEnv}, os.Stdin, os.Stdout)
		if err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Keys of the test gateway.
const (
	masterKey = "sk-master"
	teamAKey  = "sk-team-a" // demo server only; tools demo-echo and demo-whoami
)

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
// NATS, workers, demo server), extra real upstreams, and the real router
// behind a real HTTP server.
type gateway struct {
	URL       string
	Router    http.Handler
	Env       *devmode.Env
	Cfg       *config.File
	Logs      *logBuffer
	Upstreams map[string]*demoserver.Running
	Bus       *contractstest.Recording
	Inboxes   *contractstest.Recording
}

// startGateway configures these servers besides "demo":
//
//	other    http, a second demo (so echo is ambiguous)
//	legacy   sse
//	noauth   http, auth: none
//	locked   http, answers 401 unless Authorization is "Bearer good"
//	files    stdio (this test binary), token in DEMO_TOKEN
//	ghost    http, served by no worker
//	limited  http, allowed_tools [echo]
//
// Each change is applied to the configuration before anything starts.
func startGateway(t *testing.T, changes ...func(*config.File)) *gateway {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	g := &gateway{Logs: &logBuffer{}, Upstreams: map[string]*demoserver.Running{}}
	for name, spec := range map[string]struct {
		transport string
		opts      demoserver.Options
	}{
		"other":   {demoserver.TransportHTTP, demoserver.Options{}},
		"legacy":  {demoserver.TransportSSE, demoserver.Options{}},
		"noauth":  {demoserver.TransportHTTP, demoserver.Options{}},
		"locked":  {demoserver.TransportHTTP, demoserver.Options{RequireToken: "Bearer good"}},
		"limited": {demoserver.TransportHTTP, demoserver.Options{}},
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
			"other":   {URL: g.Upstreams["other"].URL},
			"legacy":  {URL: g.Upstreams["legacy"].URL, Transport: "sse"},
			"noauth":  {URL: g.Upstreams["noauth"].URL, Auth: config.AuthNone},
			"locked":  {URL: g.Upstreams["locked"].URL},
			"limited": {URL: g.Upstreams["limited"].URL, AllowedTools: []string{"echo"}},
			"ghost":   {URL: "http://127.0.0.1:9/mcp"},
			"files": {
				Transport: "stdio", Command: os.Args[0], AuthEnv: stdioTokenEnv,
				Env: map[string]string{stdioEnv: "1"},
			},
		},
		Keys: []config.Key{
			{Name: "master", Key: masterKey},
			{Name: "team-a", Key: teamAKey, Servers: []string{"demo"}, Tools: []string{"demo-echo", "demo-whoami"}},
		},
		Worker: config.Worker{Servers: []string{"demo", "other", "legacy", "noauth", "locked", "limited", "files"}},
	}
	for _, change := range changes {
		change(g.Cfg)
	}
	log := zerolog.New(g.Logs)
	env, err := devmode.Start(ctx, g.Cfg, log)
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

	g.Router, g.URL = g.newIngress(t)
	return g
}

// newIngress starts one more ingress (router, dispatcher, job store, HTTP
// server) on the gateway's NATS, as another replica would.
func (g *gateway) newIngress(t *testing.T) (http.Handler, string) {
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
	router := httpapi.New(httpapi.Options{
		Config: g.Cfg, Keys: keys, Dispatcher: d,
		Catalog: dispatch.NewCatalog(d, time.Minute), Jobs: store, Logger: log,
	})
	srv := httptest.NewServer(router)
	t.Cleanup(srv.Close)
	return router, srv.URL
}

// response is a decoded HTTP answer.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r *response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("body is not a JSON object (%v): %s", err, r.Body)
	}
	return m
}

// errorCode returns error.code of an error body.
func (r *response) errorCode(t *testing.T) string {
	t.Helper()
	e, _ := r.json(t)["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

// text returns the first text content of a CallToolResult body.
func (r *response) text(t *testing.T) string {
	t.Helper()
	var res struct {
		Content []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
	}
	if err := json.Unmarshal(r.Body, &res); err != nil || len(res.Content) == 0 {
		t.Fatalf("not a CallToolResult with content (%v): %s", err, r.Body)
	}
	return res.Content[0].Text
}

func (g *gateway) do(t *testing.T, method, path string, headers map[string]string, body string) *response {
	t.Helper()
	return doURL(t, g.URL, method, path, headers, body)
}

func doURL(t *testing.T, base, method, path string, headers map[string]string, body string) *response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
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
	return &response{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

// call posts {"name", "arguments"} to /mcp/tools/call with the master key
// and the given user token.
func (g *gateway) call(t *testing.T, token, name, args string) *response {
	t.Helper()
	h := map[string]string{"x-litellm-key": masterKey}
	if token != "" {
		h["Authorization"] = token
	}
	return g.do(t, http.MethodPost, "/mcp/tools/call", h, `{"name":"`+name+`","arguments":`+args+`}`)
}

// recordBus starts recording every raw message on the toolbus subjects and
// the reply inboxes. Only leak tests do: a wildcard subscriber counts as a
// responder to NATS, so it would turn no_workers into a timeout.
func (g *gateway) recordBus(t *testing.T) {
	g.Bus = contractstest.RecordAll(t, g.Env.Conn, "toolbus.>")
	g.Inboxes = contractstest.RecordAll(t, g.Env.Conn, "_INBOX.>")
}

// assertNoSecret fails if secret is in any log line or any raw byte that
// crossed NATS - requests and replies. Use it after calls whose tool result
// does not itself contain the secret (echo, not whoami).
func (g *gateway) assertNoSecret(t *testing.T, secret string) {
	t.Helper()
	g.Bus.Flush(t)
	g.Inboxes.Flush(t)
	if g.Bus.Count() == 0 || g.Inboxes.Count() == 0 {
		t.Fatal("the bus recorder saw nothing: the leak check would be vacuous")
	}
	if g.Bus.Contains([]byte(secret)) || g.Inboxes.Contains([]byte(secret)) {
		t.Errorf("secret %q crossed NATS in plaintext", secret)
	}
	if strings.Contains(g.Logs.String(), secret) {
		t.Errorf("secret %q is in the logs", secret)
	}
}
