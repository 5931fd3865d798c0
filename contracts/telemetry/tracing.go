package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/toolbus/toolbus/contracts/config"
)

// Service names of the two binaries (tracing.service_name overrides).
const (
	ServiceIngress = "toolbus-ingress"
	ServiceWorker  = "toolbus-worker"
)

// instrumentationName names toolbus's tracer.
const instrumentationName = "github.com/toolbus/toolbus"

// exportTimeout bounds one OTLP export request.
const exportTimeout = 10 * time.Second

// Tracing is a process's tracer provider: an OTLP/HTTP exporter behind a
// batching span processor when tracing is configured, nothing otherwise.
type Tracing struct {
	tp     *sdktrace.TracerProvider // nil: off
	tracer *Tracer
}

// NewTracing builds the tracer provider c asks for. With no endpoint it
// returns a Tracing that is off (Tracer returns nil; nothing is exported),
// which is the default. service is the service.name used when c names none.
// The exporter also honours the standard OTEL_EXPORTER_OTLP_HEADERS,
// _CERTIFICATE, _COMPRESSION and _TIMEOUT variables.
func NewTracing(ctx context.Context, c config.Tracing, service string) (*Tracing, error) {
	if c.Endpoint == "" {
		return &Tracing{}, nil
	}
	endpoint, err := TracesURL(c.Endpoint)
	if err != nil {
		return nil, err
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(endpoint), otlptracehttp.WithTimeout(exportTimeout))
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	if c.ServiceName != "" {
		service = c.ServiceName
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", service)))
	if err != nil {
		res = resource.NewSchemaless(attribute.String("service.name", service))
	}
	ratio := c.SampleRatio
	if ratio <= 0 || ratio > 1 {
		ratio = 1
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		// A caller's sampling decision stands; new traces are sampled at ratio.
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
	)
	return &Tracing{tp: tp, tracer: NewTracer(tp)}, nil
}

// StartTracing is NewTracing as a binary's main uses it: when tracing is
// on, the SDK's own errors go to log (LogErrors, process-wide) and the
// endpoint is logged once.
func StartTracing(ctx context.Context, c config.Tracing, service string, log zerolog.Logger) (*Tracing, error) {
	t, err := NewTracing(ctx, c, service)
	if err != nil || !t.Enabled() {
		return t, err
	}
	LogErrors(log)
	log.Info().Str("endpoint", c.Endpoint).Msg("tracing: exporting spans over OTLP/HTTP")
	return t, nil
}

// TracesURL is the OTLP/HTTP traces URL of endpoint: endpoint itself, or
// with /v1/traces added when it has no path.
func TracesURL(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", errors.New("tracing: the endpoint must be an http(s) URL")
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces"
	}
	return u.String(), nil
}

// Enabled reports whether spans are recorded and exported.
func (t *Tracing) Enabled() bool { return t != nil && t.tp != nil }

// Tracer returns the tracer, nil when tracing is off (a nil *Tracer is
// valid and records nothing).
func (t *Tracing) Tracer() *Tracer {
	if t == nil {
		return nil
	}
	return t.tracer
}

// ForceFlush exports the finished spans now.
func (t *Tracing) ForceFlush(ctx context.Context) error {
	if !t.Enabled() {
		return nil
	}
	return t.tp.ForceFlush(ctx)
}

// Shutdown exports what is left and stops the exporter, within ctx.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if !t.Enabled() {
		return nil
	}
	return t.tp.Shutdown(ctx)
}

// LogErrors sends the OpenTelemetry SDK's own errors (a collector that
// cannot be reached, say) to log instead of the standard logger. It sets a
// process-wide handler: call it from main only.
func LogErrors(log zerolog.Logger) {
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn().Str("error", err.Error()).Msg("tracing")
	}))
}

// Tracer starts toolbus's spans. A nil *Tracer is off: its methods return
// the context unchanged and the span in it (the caller's remote span
// context, if any, which a noop End leaves alone), allocating nothing.
type Tracer struct {
	t trace.Tracer
}

// NewTracer returns a Tracer on tp.
func NewTracer(tp trace.TracerProvider) *Tracer {
	return &Tracer{t: tp.Tracer(instrumentationName)}
}

// Enabled reports whether the Tracer records spans.
func (t *Tracer) Enabled() bool { return t != nil }

// Start starts a span of kind named name, a child of ctx's span. Set
// attributes only when span.IsRecording().
func (t *Tracer) Start(ctx context.Context, name string, kind trace.SpanKind) (context.Context, trace.Span) {
	if t == nil {
		return ctx, trace.SpanFromContext(ctx)
	}
	return t.t.Start(ctx, name, trace.WithSpanKind(kind))
}

// StartAt is Start for a span that began at start (a job's time in the
// queue, measured from its creation).
func (t *Tracer) StartAt(ctx context.Context, name string, kind trace.SpanKind, start time.Time) (context.Context, trace.Span) {
	if t == nil {
		return ctx, trace.SpanFromContext(ctx)
	}
	return t.t.Start(ctx, name, trace.WithSpanKind(kind), trace.WithTimestamp(start))
}

// The steps of one call, marked as events on the span they happen in so a
// trace shows where the time between spans goes (scripts/bench's budget
// part reads them). Between the spans' own starts and ends they are:
//
//	ingress HTTP span:  authenticated, body_read, resolved, sealed, encoded,
//	                    (the round trip's span: published, its end the reply),
//	                    reply_decoded, (the span's end: the answer written)
//	worker span:        (queue_wait span), opened, (the upstream span:
//	                    upstream_written, upstream_first_byte), reply_published
const (
	StepAuthenticated     = "toolbus.authenticated"
	StepBodyRead          = "toolbus.body_read"
	StepResolved          = "toolbus.resolved"
	StepSealed            = "toolbus.sealed"
	StepEncoded           = "toolbus.encoded"
	StepPublished         = "toolbus.published"
	StepReplyDecoded      = "toolbus.reply_decoded"
	StepOpened            = "toolbus.opened"
	StepUpstreamWritten   = "toolbus.upstream_written"
	StepUpstreamFirstByte = "toolbus.upstream_first_byte"
	StepReplyPublished    = "toolbus.reply_published"
)

// Step marks step on ctx's span when that span is recording: a branch and
// nothing else when the request is not traced.
func Step(ctx context.Context, step string) {
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.AddEvent(step)
	}
}
