package httpapi

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/toolbus/toolbus/contracts/telemetry"
	"github.com/toolbus/toolbus/ingress/frontdoor"
	"github.com/toolbus/toolbus/ingress/metrics"
)

// observe records each request's metrics and its ingress span. It takes the
// caller's W3C traceparent (or, with tracing on, starts a new trace) and
// puts the span context in the request's context, where the dispatcher
// finds it and carries it to the worker in the NATS headers: every route,
// the MCP endpoint's included, is traced the same way. With tracing off and
// no traceparent it costs a header lookup.
func observe(m *metrics.Metrics, tracer *telemetry.Tracer) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		route := c.FullPath()
		ctx := telemetry.ExtractHTTP(c.Request.Context(), c.Request.Header)
		var span trace.Span
		if tracer.Enabled() || trace.SpanContextFromContext(ctx).IsValid() {
			name := c.Request.Method + " " + route
			if route == "" {
				name = c.Request.Method
			}
			ctx, span = tracer.Start(ctx, name, trace.SpanKindServer)
			c.Request = c.Request.WithContext(ctx)
		}

		c.Next()

		status := c.Writer.Status()
		r := frontdoor.Of(c)
		server, tool, code := r.Server, r.Tool, string(r.Code)
		m.Request(route, server, tool, status, code, time.Since(start))
		if span == nil || !span.IsRecording() {
			return
		}
		span.SetAttributes(
			attribute.String("http.request.method", c.Request.Method),
			attribute.String("http.route", route),
			attribute.Int("http.response.status_code", status),
			attribute.String("toolbus.request_id", r.ID),
		)
		if server != "" {
			span.SetAttributes(attribute.String("toolbus.server", server))
		}
		if tool != "" {
			span.SetAttributes(attribute.String("toolbus.tool", tool))
		}
		if code != "" {
			span.SetAttributes(attribute.String("toolbus.error_code", code))
		}
		if status >= http.StatusInternalServerError {
			span.SetStatus(codes.Error, code)
		}
		span.End()
	}
}
