package upstream

import (
	"context"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/toolbus/toolbus/contracts/telemetry"
)

// HTTP transport defaults.
const (
	// DefaultMaxIdleConnsPerHost keeps enough warm connections per upstream
	// for a busy worker (Go's default of 2 leaves thousands of sockets in
	// TIME_WAIT under load).
	DefaultMaxIdleConnsPerHost = 256
	// DefaultResponseHeaderTimeout bounds the wait for response headers. A
	// streamable HTTP server may send its headers only with the tool's
	// result, so it has to exceed the longest call; every call also has its
	// own deadline.
	DefaultResponseHeaderTimeout = 6 * time.Minute
	// transportBufferSize is the size of each of the two buffers (read,
	// write) an upstream connection holds for as long as it lives, idle
	// too: Go's default of 4 KiB each is 2 MiB per 256 connections. A
	// tool call's request and answer headers fit in it; a larger body is
	// not slowed by it: a write of the body goes to the connection once the
	// buffer is full, and a read larger than the buffer bypasses it.
	transportBufferSize = 2 << 10
)

// NewHTTPTransport returns the transport a Pool shares between all its HTTP
// and SSE clients. responseHeaderTimeout <= 0 means
// DefaultResponseHeaderTimeout. There is deliberately no overall timeout: it
// would cut long-lived SSE streams.
func NewHTTPTransport(responseHeaderTimeout time.Duration) *http.Transport {
	if responseHeaderTimeout <= 0 {
		responseHeaderTimeout = DefaultResponseHeaderTimeout
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 4 * DefaultMaxIdleConnsPerHost
	t.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
	t.IdleConnTimeout = 90 * time.Second
	t.ResponseHeaderTimeout = responseHeaderTimeout
	t.WriteBufferSize, t.ReadBufferSize = transportBufferSize, transportBufferSize
	return t
}

// challenge records the WWW-Authenticate header of a 401 seen by the
// requests made with a context that carries it. mcp-go keeps only the
// resource metadata URL of a challenge, while the client needs all of it.
// It also records the last HTTP failure status (400 and up) those requests
// were answered with.
type challenge struct {
	mu     sync.Mutex
	www    string
	status atomic.Int32
}

func (c *challenge) set(v string) {
	c.mu.Lock()
	c.www = v
	c.mu.Unlock()
}

func (c *challenge) get() string {
	if c == nil {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.www
}

// scope is what the pool's RoundTripper (and the stdio transport) take from
// an upstream request's context, under one context key: the challenge its
// 401s are recorded in, the limit its answers are read within, and the
// tools/call that callRaw sends with it (fastcall.go). Any of them may be
// nil.
type scope struct {
	ch  *challenge
	lim *resultLimit
	fc  *fastCall
}

// callScope is the scope of one call attempt (Pool.do) with the challenge,
// the limit and the room for a fast call it points to: one allocation.
type callScope struct {
	scope
	ch  challenge
	lim resultLimit
	fc  fastCall
}

func newCallScope(maxResultBytes int64) *callScope {
	s := &callScope{lim: resultLimit{max: maxResultBytes}}
	s.scope = scope{ch: &s.ch, lim: &s.lim, fc: &s.fc}
	return s
}

type scopeKey struct{}

// withScope returns ctx carrying s; it replaces any scope ctx carried.
func withScope(ctx context.Context, s *scope) context.Context {
	return context.WithValue(ctx, scopeKey{}, s)
}

// scopeOf returns the scope ctx carries; the zero scope when none.
func scopeOf(ctx context.Context) scope {
	if s, ok := ctx.Value(scopeKey{}).(*scope); ok && s != nil {
		return *s
	}
	return scope{}
}

// challengeRecorder wraps the shared transport and stores the
// WWW-Authenticate header of every 401 in the request context's challenge.
// It also sets the request's W3C traceparent (and tracestate) to the trace
// context of the request's context - the upstream call's span, or the
// caller's own trace context when tracing is off - so the MCP server sees
// the trace it belongs to. Nothing else is added. The body of every answer
// is bounded by the request context's result limit (limit.go).
type challengeRecorder struct{ base http.RoundTripper }

func (rt challengeRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	sc := scopeOf(req.Context())
	req, fc, err := fastRequest(req, sc.fc) // fastcall.go
	if err != nil {
		return nil, err
	}
	if trace.SpanContextFromContext(req.Context()).IsValid() {
		ctx := req.Context()
		if span := trace.SpanFromContext(ctx); span.IsRecording() {
			// The request's steps on the upstream call's span (the
			// latency budget): request written, first byte of the answer.
			ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
				WroteRequest:         func(httptrace.WroteRequestInfo) { span.AddEvent(telemetry.StepUpstreamWritten) },
				GotFirstResponseByte: func() { span.AddEvent(telemetry.StepUpstreamFirstByte) },
			})
		}
		traced := req.WithContext(ctx) // a RoundTripper must not change the caller's request
		traced.Header = req.Header.Clone()
		telemetry.InjectHTTP(ctx, traced.Header)
		req = traced
	}
	resp, err := rt.base.RoundTrip(req)
	if err == nil {
		limitBody(sc.lim, resp) // limit.go
		if fc != nil {
			fastAnswer(fc, sc.lim, resp)
		}
	}
	if err == nil && resp.StatusCode >= http.StatusBadRequest {
		if c := sc.ch; c != nil {
			c.status.Store(int32(resp.StatusCode))
			if resp.StatusCode == http.StatusUnauthorized {
				c.set(strings.Join(resp.Header.Values("WWW-Authenticate"), ", "))
			}
		}
	}
	return resp, err
}

// CloseIdleConnections closes the wrapped transport's idle connections.
func (rt challengeRecorder) CloseIdleConnections() {
	if c, ok := rt.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
