package metrics

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/telemetry"
)

// UpstreamObs is one upstream call being observed: its latency and error
// class (metrics) and its span, whose context the upstream HTTP request
// carries as its traceparent.
type UpstreamObs struct {
	m                *Metrics
	span             trace.Span
	start            time.Time
	op, server, tool string
}

// StartUpstream starts observing an upstream call of op (contracts.OpCall,
// OpList, a relayed method, or OpJob) on server, with a span of tracer
// (nil: none). Call End with the call's error when it returns. m may be nil.
func (m *Metrics) StartUpstream(ctx context.Context, tracer *telemetry.Tracer, op, server, tool string) (context.Context, UpstreamObs) {
	o := UpstreamObs{m: m, op: op, server: server, tool: tool}
	ctx, o.span = tracer.Start(ctx, upstreamSpanName(tracer, op), trace.SpanKindClient)
	if o.span.IsRecording() {
		o.span.SetAttributes(attribute.String("toolbus.server", server), attribute.String("toolbus.op", op))
		if tool != "" {
			o.span.SetAttributes(attribute.String("toolbus.tool", tool))
		}
	}
	o.start = time.Now()
	return ctx, o
}

// End records the call's outcome; e is nil for success.
func (o *UpstreamObs) End(e *contracts.Error) {
	o.m.Upstream(o.op, o.server, o.tool, time.Since(o.start), e)
	if !o.span.IsRecording() {
		return
	}
	if e != nil {
		o.span.SetAttributes(attribute.String("toolbus.error_code", string(e.Code)))
		o.span.SetStatus(codes.Error, string(e.Code))
	}
	o.span.End()
}

func upstreamSpanName(tracer *telemetry.Tracer, op string) string {
	switch op {
	case contracts.OpCall, OpJob:
		return "toolbus.upstream tools/call"
	case contracts.OpList:
		return "toolbus.upstream tools/list"
	}
	if !tracer.Enabled() || !contracts.RPCMethodAllowed(op) {
		return "toolbus.upstream"
	}
	return "toolbus.upstream " + op
}
