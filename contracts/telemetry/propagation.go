package telemetry

import (
	"context"
	"net/http"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// The W3C trace-context headers. NATS header keys are case-sensitive;
// toolbus writes and reads these lower-case names, as the W3C spells them.
const (
	HeaderTraceparent = "traceparent"
	HeaderTracestate  = "tracestate"
)

// traceContext is the only propagator: W3C traceparent and tracestate. No
// baggage: it could carry anything a caller puts in it.
var traceContext = propagation.TraceContext{}

// natsCarrier adapts a NATS header to the propagator.
type natsCarrier nats.Header

func (c natsCarrier) Get(key string) string {
	if v := c[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (c natsCarrier) Set(key, value string) { c[key] = []string{value} }

func (c natsCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// canonicalTraceparent is the traceparent header's key in an http.Header.
var canonicalTraceparent = http.CanonicalHeaderKey(HeaderTraceparent)

// ExtractHTTP returns ctx with the remote span context of h's traceparent
// (and tracestate), or ctx itself when there is none or it is malformed.
func ExtractHTTP(ctx context.Context, h http.Header) context.Context {
	if len(h[canonicalTraceparent]) == 0 {
		return ctx
	}
	return traceContext.Extract(ctx, propagation.HeaderCarrier(h))
}

// InjectHTTP sets h's traceparent (and tracestate) to ctx's span context,
// if it has one.
func InjectHTTP(ctx context.Context, h http.Header) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	traceContext.Inject(ctx, propagation.HeaderCarrier(h))
}

// InjectNATS returns h with the traceparent (and tracestate) of ctx's span
// context, allocating h if it is nil; with no span context in ctx it
// returns h as it is.
func InjectNATS(ctx context.Context, h nats.Header) nats.Header {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return h
	}
	if h == nil {
		h = make(nats.Header, 2)
	}
	traceContext.Inject(ctx, natsCarrier(h))
	return h
}

// ExtractNATS returns ctx with the remote span context of h's traceparent,
// or ctx itself when there is none.
func ExtractNATS(ctx context.Context, h nats.Header) context.Context {
	if len(h[HeaderTraceparent]) == 0 {
		return ctx
	}
	return traceContext.Extract(ctx, natsCarrier(h))
}
