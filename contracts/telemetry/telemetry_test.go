package telemetry_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"

	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/telemetry"
)

const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestToolLabels_BoundedToKnownTools(t *testing.T) {
	cfg := &config.File{MCPServers: map[string]*config.Server{
		"jira": {URL: "http://127.0.0.1:1/mcp", AllowedTools: []string{"create_issue"}},
		"gh":   {URL: "http://127.0.0.1:2/mcp"},
	}}
	if err := cfg.Normalize(); err != nil {
		t.Fatal(err)
	}
	l := telemetry.NewToolLabels(cfg, 3)
	tests := []struct{ server, tool, want string }{
		{"jira", "create_issue", "create_issue"}, // allowed_tools are known
		{"jira", "other", telemetry.OtherTool},
		{"gh", "search", telemetry.OtherTool}, // not yet succeeded
		{"gh", "", ""},
	}
	for _, tc := range tests {
		if got := l.Tool(tc.server, tc.tool); got != tc.want {
			t.Errorf("Tool(%q, %q) = %q, want %q", tc.server, tc.tool, got, tc.want)
		}
	}
	if got := l.Server("nope"); got != telemetry.OtherServer {
		t.Errorf("an unconfigured server is %q", got)
	}
	l.Learn("nope", "x") // an unconfigured server learns nothing
	if got := l.Tool("nope", "x"); got != telemetry.OtherTool {
		t.Errorf("unconfigured server's tool is %q", got)
	}
	// A caller sending endless names cannot grow the set past the bound.
	for i := range 1000 {
		l.Learn("gh", fmt.Sprintf("tool-%d", i))
	}
	known := 0
	for i := range 1000 {
		if l.Tool("gh", fmt.Sprintf("tool-%d", i)) != telemetry.OtherTool {
			known++
		}
	}
	if known != 3 {
		t.Errorf("%d tools of gh are label values, want the bound 3", known)
	}
}

func TestPropagation_NATSRoundTrip(t *testing.T) {
	h := http.Header{}
	h.Set("Traceparent", traceparent)
	h.Set("Tracestate", "vendor=1")
	ctx := telemetry.ExtractHTTP(context.Background(), h)
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() || !sc.IsRemote() || sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("extracted %v", sc)
	}
	nh := telemetry.InjectNATS(ctx, nil)
	if got := nh.Get(telemetry.HeaderTraceparent); got != traceparent {
		t.Fatalf("NATS traceparent %q, want %q", got, traceparent)
	}
	if got := nh.Get(telemetry.HeaderTracestate); got != "vendor=1" {
		t.Fatalf("NATS tracestate %q", got)
	}
	back := telemetry.ExtractNATS(context.Background(), nh)
	out := http.Header{}
	telemetry.InjectHTTP(back, out)
	if got := out.Get("Traceparent"); got != traceparent {
		t.Fatalf("HTTP traceparent after NATS %q, want it unchanged", got)
	}
	// Nothing in, nothing out; a nil tracer adds nothing.
	bare := context.Background()
	if h := telemetry.InjectNATS(bare, nil); h != nil {
		t.Fatalf("headers without a trace: %v", h)
	}
	var tr *telemetry.Tracer
	if got, _ := tr.Start(bare, "x", trace.SpanKindServer); got != bare {
		t.Fatal("a nil tracer changed the context")
	}
	bad := http.Header{}
	bad.Set("Traceparent", "00-zz-yy-01")
	if sc := trace.SpanContextFromContext(telemetry.ExtractHTTP(bare, bad)); sc.IsValid() {
		t.Fatal("a malformed traceparent was taken")
	}
	if got := telemetry.ExtractNATS(bare, nats.Header{}); got != bare {
		t.Fatal("an empty NATS header changed the context")
	}
}

func TestNewTracing_OffByDefault(t *testing.T) {
	tr, err := telemetry.NewTracing(context.Background(), config.Tracing{}, telemetry.ServiceWorker)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Enabled() || tr.Tracer() != nil {
		t.Fatal("tracing on without an endpoint")
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := telemetry.NewTracing(context.Background(), config.Tracing{Endpoint: "collector:4318"}, "x"); err == nil {
		t.Fatal("an endpoint that is no URL was accepted")
	}
}

// StartTracing logs the endpoint once when tracing is on, nothing when off.
func TestStartTracing_LogsTheEndpointWhenOn(t *testing.T) {
	for _, tc := range []struct {
		endpoint string
		lines    int
	}{{"", 0}, {"http://127.0.0.1:1/v1/traces", 1}} {
		var buf bytes.Buffer
		tr, err := telemetry.StartTracing(context.Background(), config.Tracing{Endpoint: tc.endpoint, SampleRatio: 1}, telemetry.ServiceWorker, zerolog.New(&buf))
		if err != nil {
			t.Fatal(err)
		}
		if tr.Enabled() != (tc.endpoint != "") || strings.Count(buf.String(), "\n") != tc.lines || !strings.Contains(buf.String(), tc.endpoint) {
			t.Errorf("endpoint %q: enabled %v, logged %q", tc.endpoint, tr.Enabled(), buf.String())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := tr.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		cancel()
	}
}

func TestTracesURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://c:4318":            "http://c:4318/v1/traces",
		"http://c:4318/":           "http://c:4318/v1/traces",
		"https://c/custom/traces":  "https://c/custom/traces",
		"http://c:4318/v1/traces/": "http://c:4318/v1/traces/",
	} {
		if got, err := telemetry.TracesURL(in); err != nil || got != want {
			t.Errorf("TracesURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestServe_MetricsHealthReadyAndShutdown(t *testing.T) {
	reg := telemetry.NewRegistry()
	var ready atomic.Bool
	srv, err := telemetry.Serve("127.0.0.1:0", reg, func() error {
		if !ready.Load() {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+srv.Addr()+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "go_goroutines") || !strings.Contains(body, "process_") {
		t.Fatalf("/metrics: %d\n%.300s", code, body)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz: %d", code)
	}
	if code, body := get("/readyz"); code != 503 || strings.Contains(body, "not yet") {
		t.Fatalf("/readyz before ready: %d %s", code, body)
	}
	ready.Store(true)
	if code, _ := get("/readyz"); code != 200 {
		t.Fatalf("/readyz: %d", code)
	}
	if code, _ := get("/nope"); code != 404 {
		t.Fatalf("/nope: %d", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get("http://" + srv.Addr() + "/healthz"); err == nil {
		t.Fatal("still serving after Shutdown")
	}
}
