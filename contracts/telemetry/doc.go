// Package telemetry is what the ingress and the worker share for metrics and
// traces: a private Prometheus registry per process (with the Go and process
// collectors) and its /metrics handler, a bounded set of tool-name label
// values, the OpenTelemetry tracer provider built from the configuration
// (OTLP over HTTP, off by default), W3C trace-context propagation through
// HTTP and NATS headers, the worker's metrics HTTP server, and the base
// logger of both binaries (JSON lines; console lines for a person at a
// terminal in dev mode).
//
// It lives under contracts/, beside the wire contract, because both
// binaries import it; it imports nothing of either side but the shared
// configuration.
//
// Nothing here puts a secret anywhere: label values are route templates,
// configured server names, known tool names and error codes; span attributes
// are the same plus request and job ids. Propagation carries only the
// traceparent and tracestate headers (no baggage).
//
// With tracing off, spans cost nothing (Tracer's methods return the context
// unchanged), and a caller's traceparent is still carried, unchanged, from
// the HTTP request through NATS to the upstream MCP request.
package telemetry
