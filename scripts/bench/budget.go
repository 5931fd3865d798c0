package main

import (
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// The latency budget.
//
// The budget part restarts the ingress and the worker with tracing on,
// exporting to an OTLP/HTTP receiver in this process, and makes calls at
// concurrency 1, each with a sampled traceparent of its own. Every span of
// a call (the ingress's HTTP span, its NATS round trip, the worker's span,
// the wait for a call slot, the upstream call) gives two points, its start
// and its end, and every span event one more (toolbus marks the steps
// between them with events). For each call the points are put in time
// order; the table gives, for each pair of consecutive points, the median
// time between them over all calls: where each microsecond of the
// overhead goes. The processes share one clock, so points of different
// processes compare.
//
// Tracing costs a little itself (a span is a few microseconds), so the
// budget's total is somewhat above the untraced c=1 overhead of the sync
// part.

// budgetCalls is how many calls of each path the budget part traces.
const budgetCalls = 2000

// point is one moment of a traced call.
type point struct {
	name string
	at   time.Time
}

// traceSink receives OTLP/HTTP exports and keeps each trace's points.
type traceSink struct {
	mu     sync.Mutex
	traces map[string][]point
	spans  int
}

func (t *traceSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = http.MaxBytesReader(w, r.Body, 64<<20)
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req collectortrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(raw, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	t.mu.Lock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				id := hex.EncodeToString(sp.TraceId)
				pts := append(t.traces[id],
					point{sp.Name + " start", time.Unix(0, int64(sp.StartTimeUnixNano))},
					point{sp.Name + " end", time.Unix(0, int64(sp.EndTimeUnixNano))})
				for _, ev := range sp.Events {
					pts = append(pts, point{ev.Name, time.Unix(0, int64(ev.TimeUnixNano))})
				}
				t.traces[id] = pts
				t.spans++
			}
		}
	}
	t.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	_, _ = w.Write(out)
}

// take returns and forgets the traces whose ids are in ids.
func (t *traceSink) take(ids []string) [][]point {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out [][]point
	for _, id := range ids {
		if pts, ok := t.traces[id]; ok {
			out = append(out, pts)
			delete(t.traces, id)
		}
	}
	return out
}

// count is how many of ids have arrived with at least minSpans spans.
func (t *traceSink) count(ids []string, minPoints int) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, id := range ids {
		if len(t.traces[id]) >= minPoints {
			n++
		}
	}
	return n
}

// budgetRow is one step of the budget.
type budgetRow struct {
	From, To string
	P50us    float64
	Calls    int
	order    float64 // mean offset of To from the call's first point
}

// benchBudget runs the budget part: REST and MCP calls at c=1, traced.
func benchBudget(ctx context.Context, s *system) ([]budgetTable, error) {
	sink := &traceSink{traces: map[string][]point{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: sink, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	env := []string{
		"TOOLBUS_TRACING_ENDPOINT=http://" + ln.Addr().String(),
		"TOOLBUS_TRACING_SAMPLE_RATIO=1",
		"OTEL_BSP_SCHEDULE_DELAY=200", // export every 200 ms, not every 5 s
		"OTEL_BSP_MAX_QUEUE_SIZE=65536",
	}
	if err := s.restart(env); err != nil {
		return nil, err
	}
	defer func() { _ = s.restart(nil) }()

	var tables []budgetTable
	paths := []struct {
		name string
		open func() (caller, func(), error)
	}{
		{"toolbus REST", func() (caller, func(), error) {
			return restCaller(s.url, echoBody("fast", "hello"), 1), func() {}, nil
		}},
		{"toolbus MCP /mcp", func() (caller, func(), error) {
			return directCaller(ctx, s.url+"/mcp", "fast-echo", map[string]any{"text": "hello"}, 1,
				map[string]string{"x-litellm-key": benchKey, "Authorization": "Bearer bench-user"})
		}},
	}
	for _, p := range paths {
		call, done, err := p.open()
		if err != nil {
			return nil, err
		}
		for range 200 { // warm up (sessions, seal epochs), untraced
			_ = call(ctx)
		}
		var ids []string
		var lat []time.Duration
		for range budgetCalls {
			id, tp := newTraceparent()
			t0 := time.Now()
			if err := call(withTraceparent(ctx, tp)); err == nil {
				lat = append(lat, time.Since(t0))
				ids = append(ids, id)
			}
		}
		done()
		if len(ids) == 0 {
			return nil, fmt.Errorf("budget: no %s call succeeded", p.name)
		}
		// Wait for the exports: a call's trace has its spans from both
		// processes (the ingress's two, the worker's three) by then.
		deadline := time.Now().Add(15 * time.Second)
		for sink.count(ids, 10) < len(ids) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		slices.Sort(lat)
		tables = append(tables, budgetTable{Path: p.name, Calls: len(ids), P50ms: float64(lat[len(lat)/2].Microseconds()) / 1000,
			Rows: budget(sink.take(ids))})
	}
	return tables, nil
}

// budgetTable is the budget of one path.
type budgetTable struct {
	Path  string
	Calls int
	P50ms float64
	Rows  []budgetRow
}

// budget turns the calls' points into the median time between consecutive
// points, in the order the points come in a call.
func budget(calls [][]point) []budgetRow {
	type acc struct {
		gaps    []time.Duration
		offsets time.Duration
	}
	steps := map[[2]string]*acc{}
	for _, pts := range calls {
		sort.SliceStable(pts, func(i, j int) bool { return pts[i].at.Before(pts[j].at) })
		for i := 1; i < len(pts); i++ {
			k := [2]string{pts[i-1].name, pts[i].name}
			a := steps[k]
			if a == nil {
				a = &acc{}
				steps[k] = a
			}
			a.gaps = append(a.gaps, pts[i].at.Sub(pts[i-1].at))
			a.offsets += pts[i].at.Sub(pts[0].at)
		}
	}
	var rows []budgetRow
	for k, a := range steps {
		// A pair that only some calls have (points whose order varies)
		// is noise; keep the pairs most calls share.
		if len(a.gaps)*10 < len(calls)*9 {
			continue
		}
		slices.Sort(a.gaps)
		rows = append(rows, budgetRow{From: k[0], To: k[1], Calls: len(a.gaps),
			P50us: float64(a.gaps[len(a.gaps)/2].Nanoseconds()) / 1000,
			order: float64(a.offsets) / float64(len(a.gaps))})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].order < rows[j].order })
	return rows
}

// newTraceparent returns a new trace id and a sampled W3C traceparent for it.
func newTraceparent() (string, string) {
	var b [24]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:16])
	return id, "00-" + id + "-" + hex.EncodeToString(b[16:]) + "-01"
}

type traceparentKey struct{}

// withTraceparent makes the callers send traceparent with ctx's request.
func withTraceparent(ctx context.Context, traceparent string) context.Context {
	return context.WithValue(ctx, traceparentKey{}, traceparent)
}

// traceparentOf is the traceparent ctx's request sends, if any.
func traceparentOf(ctx context.Context) string {
	tp, _ := ctx.Value(traceparentKey{}).(string)
	return tp
}

func printBudget(w io.Writer, tables []budgetTable) {
	for _, t := range tables {
		fmt.Fprintf(w, "\nLatency budget, %s, c=1 (%d traced calls, p50 %.3f ms end to end):\n\n", t.Path, t.Calls, t.P50ms)
		fmt.Fprintln(w, "| from | to | p50 µs |")
		fmt.Fprintln(w, "|---|---|---:|")
		var sum float64
		for _, r := range t.Rows {
			fmt.Fprintf(w, "| %s | %s | %.1f |\n", r.From, r.To, r.P50us)
			sum += r.P50us
		}
		fmt.Fprintf(w, "| | sum of the steps' medians | %.1f |\n", sum)
	}
}
