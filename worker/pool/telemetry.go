package pool

import (
	"context"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/telemetry"
	workermetrics "github.com/toolbus/toolbus/worker/metrics"
)

// WithTelemetry records the pool's metrics in m (requests, upstream calls,
// rejections, slots, jobs) and its spans with tracer (the worker's span of
// each request, its wait for a call slot, the upstream call). Either may be
// nil. Without a tracer the trace context a request carries still reaches
// the upstream MCP request.
func WithTelemetry(m *workermetrics.Metrics, tracer *telemetry.Tracer) Option {
	return func(o *options) { o.metrics, o.tracer = m, tracer }
}

// slotStats reports each server's call slots (for the gauges).
func (p *Pool) slotStats() []workermetrics.SlotStats {
	out := make([]workermetrics.SlotStats, 0, len(p.servers))
	for _, s := range p.servers {
		lim := p.limits[s]
		out = append(out, workermetrics.SlotStats{
			Server: s, Running: len(lim.slots), Waiting: len(lim.queue), Slots: min(cap(lim.slots), cap(p.global)),
		})
	}
	return out
}

// clientStats reports the upstream client pool (for the gauges).
func (p *Pool) clientStats() workermetrics.ClientStats {
	st := p.up.Stats()
	return workermetrics.ClientStats{Open: st.Clients, Opened: st.Connects, ConnectFailures: st.ConnectFailures, Evictions: st.Evictions}
}

// requestTrace is one request's spans on this worker: the worker's span
// (from receipt to reply) and, inside it, the wait for a call slot.
type requestTrace struct {
	ctx      context.Context // the request's context: its trace, the worker's span
	span     trace.Span
	wait     trace.Span
	received time.Time
}

// startRequest takes the trace context of m's headers and starts the
// worker's spans. base is the context calls run on.
func (p *Pool) startRequest(base context.Context, m *nats.Msg) requestTrace {
	rt := requestTrace{received: time.Now()}
	ctx := telemetry.ExtractNATS(base, m.Header)
	ctx, rt.span = p.tracer.Start(ctx, workerSpanName(m.Subject), trace.SpanKindServer)
	if rt.span.IsRecording() {
		rt.span.SetAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.destination.name", m.Subject),
			attribute.String("toolbus.worker", p.name),
		)
	}
	_, rt.wait = p.tracer.Start(ctx, "toolbus.queue_wait", trace.SpanKindInternal)
	rt.ctx = ctx
	return rt
}

// waited ends the wait: the request holds a call slot (or gave up).
func (p *Pool) waited(rt *requestTrace, server string) {
	p.metrics.QueueWait(server, workermetrics.QueueRequest, time.Since(rt.received))
	if rt.wait.IsRecording() {
		rt.wait.End()
	}
}

// end ends the worker's span.
func (rt *requestTrace) end() {
	if rt.span.IsRecording() {
		rt.span.End()
	}
}

// workerSpanName names the worker's span of a request, without allocating.
func workerSpanName(subject string) string {
	rest, _ := strings.CutPrefix(subject, contracts.SubjectRoot+".")
	switch op, _, _ := strings.Cut(rest, "."); op {
	case "call":
		return "toolbus.worker call"
	case "list":
		return "toolbus.worker list"
	case "rpc":
		return "toolbus.worker rpc"
	default:
		return "toolbus.worker"
	}
}
