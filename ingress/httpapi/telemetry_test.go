package httpapi_test

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/contracts/telemetry"
	"github.com/toolbus/toolbus/ingress/devmode"
	"github.com/toolbus/toolbus/ingress/internal/gatewaytest"
)

// Secrets the telemetry tests send and then look for everywhere.
const (
	telUserToken = "Bearer user-secret-7f3a9c1e5d"
	telBadKey    = "sk-wrong-secret-41b7d0"
	telBogusTool = "nosuchtool-9e8d7c6b"
	// The caller's W3C trace context.
	telTraceID    = "4bf92f3577b34da6a3ce929d0e0e4736"
	telParentSpan = "00f067aa0ba902b7"
	telTraceparnt = "00-" + telTraceID + "-" + telParentSpan + "-01"
)

// telGateway is the whole system with telemetry (gatewaytest.Start with
// DemoOnly and WithTelemetry): the workers' registry served on their own
// port, and an ingress with its registry on GET /metrics.
type telGateway struct {
	*gatewaytest.Gateway
	WorkerURL string // the workers' metrics server
	Tracing   *telemetry.Tracing
}

// startTelGateway starts it; tracing is the process's tracing (off when
// its config has no endpoint).
func startTelGateway(t *testing.T, tracingCfg config.Tracing) *telGateway {
	t.Helper()
	tracing, err := telemetry.NewTracing(t.Context(), tracingCfg, telemetry.ServiceIngress)
	if err != nil {
		t.Fatal(err)
	}
	gatewaytest.StopAtEnd(t, tracing.Shutdown)
	g := gatewaytest.Start(t, gatewaytest.DemoOnly(), gatewaytest.WithTelemetry(tracing))
	ms, err := telemetry.Serve("127.0.0.1:0", g.WorkerRegistry, nil)
	if err != nil {
		t.Fatal(err)
	}
	gatewaytest.StopAtEnd(t, ms.Shutdown)
	return &telGateway{Gateway: g, WorkerURL: "http://" + ms.Addr(), Tracing: tracing}
}

func (g *telGateway) call(t *testing.T, key, body string, extra map[string]string) *response {
	t.Helper()
	h := map[string]string{"x-litellm-key": key, "Authorization": telUserToken}
	for k, v := range extra {
		h[k] = v
	}
	return doURL(t, g.URL, http.MethodPost, "/mcp/tools/call", h, body)
}

// scrape returns the exposition text of url's /metrics.
func scrape(t *testing.T, base string) string {
	t.Helper()
	r := doURL(t, base, http.MethodGet, "/metrics", nil, "")
	if r.Status != http.StatusOK {
		t.Fatalf("GET %s/metrics: %d %s", base, r.Status, r.Body)
	}
	return string(r.Body)
}

// wantSeries fails unless text has a sample line with all the labels
// (name{...} with each label="value" pair) and, if value is set, that value.
func wantSeries(t *testing.T, text, name string, labels map[string]string, value string) {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		series, sample, found := strings.Cut(line, " ")
		if !found || (series != name && !strings.HasPrefix(series, name+"{")) {
			continue
		}
		ok := true
		for k, v := range labels {
			if !strings.Contains(line, k+`="`+v+`"`) {
				ok = false
				break
			}
		}
		if ok && (value == "" || sample == value) {
			return
		}
	}
	t.Errorf("no sample %s%v = %q in:\n%s", name, labels, value, grepLines(text, name))
}

func grepLines(text, prefix string) string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, prefix) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

func assertNoSecretIn(t *testing.T, what, text string) {
	t.Helper()
	for _, secret := range []string{telUserToken, "user-secret-7f3a9c1e5d", masterKey, telBadKey, telBogusTool} {
		if strings.Contains(text, secret) {
			t.Errorf("%s holds %q", what, secret)
		}
	}
}

func TestTelemetry_MetricsAfterKnownCalls(t *testing.T) {
	g := startTelGateway(t, config.Tracing{})

	if r := g.call(t, masterKey, `{"name":"whoami","arguments":{}}`, nil); r.Status != http.StatusOK {
		t.Fatalf("whoami: %d %s", r.Status, r.Body)
	}
	if r := g.call(t, masterKey, `{"name":"`+telBogusTool+`","server_id":"demo","arguments":{}}`, nil); r.Status != http.StatusNotFound {
		t.Fatalf("unknown tool: %d %s", r.Status, r.Body)
	}
	if r := g.call(t, telBadKey, `{"name":"whoami","arguments":{}}`, nil); r.Status != http.StatusUnauthorized {
		t.Fatalf("bad key: %d %s", r.Status, r.Body)
	}
	if r := doURL(t, g.URL, http.MethodGet, "/mcp-rest/tools/list", map[string]string{"x-litellm-key": masterKey, "Authorization": telUserToken}, ""); r.Status != http.StatusOK {
		t.Fatalf("list: %d %s", r.Status, r.Body)
	}

	in := scrape(t, g.URL)
	wantSeries(t, in, "toolbus_ingress_requests_total", map[string]string{"route": "/mcp/tools/call", "server": "demo", "tool": "whoami", "status": "200", "code": "ok"}, "1")
	wantSeries(t, in, "toolbus_ingress_requests_total", map[string]string{"route": "/mcp/tools/call", "server": "demo", "tool": telemetry.OtherTool, "status": "404", "code": "unknown_tool"}, "1")
	wantSeries(t, in, "toolbus_ingress_requests_total", map[string]string{"route": "/mcp/tools/call", "status": "401", "code": "unauthorized"}, "1")
	wantSeries(t, in, "toolbus_ingress_requests_total", map[string]string{"route": "/mcp-rest/tools/list", "status": "200", "code": "ok"}, "1")
	wantSeries(t, in, "toolbus_ingress_request_duration_seconds_count", map[string]string{"route": "/mcp/tools/call", "server": "demo", "status": "200"}, "1")
	wantSeries(t, in, "toolbus_ingress_nats_round_trip_seconds_count", map[string]string{"op": "call", "server": "demo", "result": "reply"}, "2")
	wantSeries(t, in, "toolbus_ingress_nats_round_trip_seconds_count", map[string]string{"op": "list", "server": "demo", "result": "reply"}, "1")
	for _, name := range []string{"toolbus_ingress_in_flight_requests ", "toolbus_ingress_overload_rejections_total ", "toolbus_ingress_seal_failures_total ", "go_goroutines ", "process_resident_memory_bytes "} {
		if !strings.Contains(in, "\n"+name) {
			t.Errorf("ingress /metrics has no %s", name)
		}
	}
	assertNoSecretIn(t, "the ingress's /metrics", in)

	w := scrape(t, g.WorkerURL)
	wantSeries(t, w, "toolbus_worker_requests_total", map[string]string{"op": "tools/call", "server": "demo", "tool": "whoami", "code": "ok"}, "1")
	wantSeries(t, w, "toolbus_worker_requests_total", map[string]string{"op": "tools/call", "server": "demo", "tool": telemetry.OtherTool, "code": "unknown_tool"}, "1")
	wantSeries(t, w, "toolbus_worker_requests_total", map[string]string{"op": "tools/list", "server": "demo", "code": "ok"}, "1")
	wantSeries(t, w, "toolbus_worker_upstream_duration_seconds_count", map[string]string{"op": "tools/call", "server": "demo", "outcome": "ok"}, "1")
	wantSeries(t, w, "toolbus_worker_upstream_duration_seconds_count", map[string]string{"op": "tools/call", "server": "demo", "outcome": "error"}, "1")
	wantSeries(t, w, "toolbus_worker_upstream_errors_total", map[string]string{"server": "demo", "class": "unknown_tool"}, "1")
	wantSeries(t, w, "toolbus_worker_queue_wait_seconds_count", map[string]string{"server": "demo", "kind": "request"}, "3")
	wantSeries(t, w, "toolbus_worker_slots", map[string]string{"server": "demo"}, "64")
	wantSeries(t, w, "toolbus_worker_in_flight", map[string]string{"server": "demo"}, "0")
	wantSeries(t, w, "toolbus_worker_overload_rejections_total", map[string]string{"server": "demo", "reason": "no_slot"}, "0")
	wantSeries(t, w, "toolbus_worker_jobs_queued", map[string]string{"server": "demo"}, "0")
	// Two upstream clients (sessions), kept open: the user's for the calls,
	// and one with no credential for the list (a fan-out: the user's token
	// goes to no server there).
	wantSeries(t, w, "toolbus_worker_upstream_clients_opened_total", nil, "2")
	wantSeries(t, w, "toolbus_worker_upstream_clients", nil, "2")
	wantSeries(t, w, "toolbus_worker_upstream_client_failures_total", nil, "0")
	assertNoSecretIn(t, "the worker's /metrics", w)

	// The worker's server answers probes too.
	for _, path := range []string{"/healthz", "/readyz"} {
		if r := doURL(t, g.WorkerURL, http.MethodGet, path, nil, ""); r.Status != http.StatusOK {
			t.Errorf("worker %s: %d", path, r.Status)
		}
	}
}

func TestTelemetry_JobMetricsAndTrace(t *testing.T) {
	g := startTelGateway(t, config.Tracing{})
	h := map[string]string{"x-litellm-key": masterKey, "Authorization": telUserToken, "traceparent": telTraceparnt}
	r := doURL(t, g.URL, http.MethodPost, "/v1/calls", h, `{"name":"echo","arguments":{"text":"hi"}}`)
	if r.Status != http.StatusAccepted {
		t.Fatalf("submit: %d %s", r.Status, r.Body)
	}
	id, _ := r.JSON(t)["id"].(string)
	r = doURL(t, g.URL, http.MethodGet, "/v1/calls/"+id+"?wait=20s", h, "")
	if st, _ := r.JSON(t)["status"].(string); st != "succeeded" {
		t.Fatalf("job: %s", r.Body)
	}
	// The delivery is counted once the worker has settled it, which may be
	// just after the record shows the job succeeded.
	var w string
	contractstest.Eventually(t, "the job's delivery to be counted", func() bool {
		w = scrape(t, g.WorkerURL)
		return strings.Contains(w, `toolbus_worker_job_deliveries_total{outcome="succeeded",server="demo"} 1`)
	})
	wantSeries(t, w, "toolbus_worker_job_deliveries_total", map[string]string{"server": "demo", "outcome": "succeeded"}, "1")
	wantSeries(t, w, "toolbus_worker_upstream_duration_seconds_count", map[string]string{"op": "job", "server": "demo", "outcome": "ok"}, "1")
	wantSeries(t, w, "toolbus_worker_queue_wait_seconds_count", map[string]string{"server": "demo", "kind": "job"}, "1")
	assertNoSecretIn(t, "the worker's /metrics", w)
	// The job's upstream request carries the submitter's trace.
	if got := upstreamTraceparents(g.Env); !containsTrace(got, telTraceID) {
		t.Errorf("no upstream request of the job carried trace %s: %q", telTraceID, got)
	}
}

func upstreamTraceparents(env *devmode.Env) []string {
	var out []string
	for _, r := range env.Demo.Recorder.Entries() {
		if r.RPCMethod == "tools/call" {
			out = append(out, r.Header.Get("Traceparent"))
		}
	}
	return out
}

func containsTrace(traceparents []string, traceID string) bool {
	for _, tp := range traceparents {
		if strings.Contains(tp, "-"+traceID+"-") {
			return true
		}
	}
	return false
}

func TestTelemetry_TraceparentReachesUpstreamWithTracingOff(t *testing.T) {
	g := startTelGateway(t, config.Tracing{})
	if r := g.call(t, masterKey, `{"name":"echo","arguments":{"text":"hi"}}`, map[string]string{"traceparent": telTraceparnt}); r.Status != http.StatusOK {
		t.Fatalf("echo: %d %s", r.Status, r.Body)
	}
	got := upstreamTraceparents(g.Env)
	if len(got) != 1 || got[0] != telTraceparnt {
		t.Fatalf("upstream traceparent %q, want exactly the caller's %q (tracing off: carried unchanged)", got, telTraceparnt)
	}
	// Without one, none is made up.
	if r := g.call(t, masterKey, `{"name":"echo","arguments":{"text":"hi"}}`, nil); r.Status != http.StatusOK {
		t.Fatalf("echo: %d %s", r.Status, r.Body)
	}
	if got := upstreamTraceparents(g.Env); len(got) != 2 || got[1] != "" {
		t.Fatalf("upstream traceparents %q: tracing off and no caller trace, want none", got)
	}
}

// otlpReceiver is an in-process OTLP/HTTP traces endpoint.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []*tracepb.Span
	bad   []string
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	data, err := io.ReadAll(body)
	var req coltrace.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(data, &req)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if r.URL.Path != "/v1/traces" || err != nil {
		o.bad = append(o.bad, r.URL.Path)
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			o.spans = append(o.spans, ss.Spans...)
		}
	}
	out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func (o *otlpReceiver) byName() map[string][]*tracepb.Span {
	o.mu.Lock()
	defer o.mu.Unlock()
	m := map[string][]*tracepb.Span{}
	for _, s := range o.spans {
		m[s.Name] = append(m[s.Name], s)
	}
	return m
}

func TestTelemetry_SpansExportedOverOTLP(t *testing.T) {
	recv := &otlpReceiver{}
	collector := httptest.NewServer(recv)
	t.Cleanup(collector.Close)
	g := startTelGateway(t, config.Tracing{Endpoint: collector.URL, SampleRatio: 1})

	if r := g.call(t, masterKey, `{"name":"echo","arguments":{"text":"hi"}}`, map[string]string{"traceparent": telTraceparnt}); r.Status != http.StatusOK {
		t.Fatalf("echo: %d %s", r.Status, r.Body)
	}
	// A call with a bad key is traced too, and its span names no secret.
	if r := g.call(t, telBadKey, `{"name":"echo","arguments":{}}`, nil); r.Status != http.StatusUnauthorized {
		t.Fatalf("bad key: %d", r.Status)
	}
	if err := g.Tracing.ForceFlush(contractstest.Ctx(t)); err != nil {
		t.Fatal(err)
	}
	spans := recv.byName()
	if len(recv.bad) > 0 {
		t.Fatalf("bad exports: %v", recv.bad)
	}
	one := func(name string) *tracepb.Span {
		t.Helper()
		for _, s := range spans[name] {
			if hex.EncodeToString(s.TraceId) == telTraceID {
				return s
			}
		}
		t.Fatalf("no span %q in the caller's trace; spans: %v", name, keys(spans))
		return nil
	}
	ingress := one("POST /mcp/tools/call")
	dispatchSpan := one("toolbus.dispatch call")
	worker := one("toolbus.worker call")
	up := one("toolbus.upstream tools/call")
	// The bare tool name made the ingress list the tools first: a second
	// round trip in the same trace, with its own worker span and wait.
	var wait *tracepb.Span
	for _, s := range spans["toolbus.queue_wait"] {
		if bytes.Equal(s.ParentSpanId, worker.SpanId) {
			wait = s
		}
	}
	if wait == nil {
		t.Fatalf("no queue wait span under the worker's span")
	}
	one("toolbus.worker list")
	one("toolbus.upstream tools/list")
	parent := func(child, parent *tracepb.Span, parentID string) {
		t.Helper()
		if got := hex.EncodeToString(child.ParentSpanId); got != parentID {
			t.Errorf("span %q has parent %s, want %s (%s)", child.Name, got, parentID, parent.GetName())
		}
	}
	parent(ingress, nil, telParentSpan)
	parent(dispatchSpan, ingress, hex.EncodeToString(ingress.SpanId))
	parent(worker, dispatchSpan, hex.EncodeToString(dispatchSpan.SpanId))
	parent(wait, worker, hex.EncodeToString(worker.SpanId))
	parent(up, worker, hex.EncodeToString(worker.SpanId))
	if ingress.Kind != tracepb.Span_SPAN_KIND_SERVER || up.Kind != tracepb.Span_SPAN_KIND_CLIENT {
		t.Errorf("kinds: ingress %v, upstream %v", ingress.Kind, up.Kind)
	}
	// The steps between the spans are marked on them, in order (the
	// latency budget reads them).
	steps := func(s *tracepb.Span, want ...string) {
		t.Helper()
		var got []string
		for _, ev := range s.Events {
			got = append(got, ev.Name)
		}
		i := 0
		for _, name := range got {
			if i < len(want) && name == want[i] {
				i++
			}
		}
		if i < len(want) {
			t.Errorf("span %q has the events %v, want %v in this order", s.Name, got, want)
		}
	}
	steps(ingress, telemetry.StepAuthenticated, telemetry.StepBodyRead, telemetry.StepResolved,
		telemetry.StepSealed, telemetry.StepEncoded, telemetry.StepReplyDecoded)
	steps(dispatchSpan, telemetry.StepPublished)
	steps(worker, telemetry.StepOpened, telemetry.StepReplyPublished)
	steps(up, telemetry.StepUpstreamWritten, telemetry.StepUpstreamFirstByte)
	// The MCP server received the upstream span as its parent.
	want := "00-" + telTraceID + "-" + hex.EncodeToString(up.SpanId) + "-01"
	if got := upstreamTraceparents(g.Env); len(got) != 1 || got[0] != want {
		t.Errorf("upstream traceparent %q, want %q", got, want)
	}
	// A request without a traceparent starts a trace of its own.
	if len(spans["POST /mcp/tools/call"]) < 2 {
		t.Errorf("the unauthorized call has no ingress span: %v", keys(spans))
	}

	// No attribute of any span holds a secret.
	var all bytes.Buffer
	for _, list := range spans {
		for _, s := range list {
			all.WriteString(s.Name)
			for _, a := range s.Attributes {
				all.WriteString(" " + a.Key + "=" + a.Value.String())
			}
			all.WriteString("\n")
		}
	}
	assertNoSecretIn(t, "the exported spans", all.String())
	if !strings.Contains(all.String(), "toolbus.error_code") {
		t.Errorf("no span records the unauthorized call's code:\n%s", all.String())
	}
}

func keys(m map[string][]*tracepb.Span) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
