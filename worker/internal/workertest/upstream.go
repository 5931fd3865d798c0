package workertest

import (
	"bytes"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/toolbus/toolbus/worker/demoserver"
)

// Upstream is a demo MCP server (streamable HTTP) whose tool calls are
// counted (demoserver.Calls), and that can fail the next calls with HTTP 503.
type Upstream struct {
	// URL is the MCP endpoint.
	URL string
	// Recorder sees every HTTP request.
	Recorder *demoserver.Recorder
	calls    *demoserver.Calls

	mu       sync.Mutex
	failNext int
	requests int
	failed   int
}

// StartUpstream runs an Upstream until the test ends. opts.Calls is set.
func StartUpstream(t testing.TB, opts demoserver.Options) *Upstream {
	t.Helper()
	opts.Calls = &demoserver.Calls{}
	u := &Upstream{calls: opts.Calls}
	opts.Wrap = u.wrap
	run := StartDemo(t, opts, demoserver.TransportHTTP)
	u.URL, u.Recorder = run.URL, run.Recorder
	return u
}

func (u *Upstream) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if demoserver.PeekRPCMethod(r) == "tools/call" {
			u.mu.Lock()
			u.requests++
			fail := u.failNext > 0
			if fail {
				u.failNext--
				u.failed++
			}
			u.mu.Unlock()
			if fail {
				http.Error(w, "demo upstream failing on purpose", http.StatusServiceUnavailable)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// FailNext makes the next n tools/call requests fail with HTTP 503.
func (u *Upstream) FailNext(n int) {
	u.mu.Lock()
	u.failNext = n
	u.mu.Unlock()
}

// UpstreamStats counts an Upstream's tool calls.
type UpstreamStats struct {
	// Requests counts tools/call HTTP requests, Failed those answered 503.
	Requests, Failed int
	// The tool handlers that ran.
	demoserver.CallStats
}

// Stats returns the counts so far.
func (u *Upstream) Stats() UpstreamStats {
	u.mu.Lock()
	defer u.mu.Unlock()
	return UpstreamStats{Requests: u.requests, Failed: u.failed, CallStats: u.calls.Stats()}
}

// PanicOnAnswer is an HTTP transport for an upstream pool that panics, on
// the goroutine making the upstream request, when the answer to a POST (an
// MCP request) contains marker: a stand-in for a handler that an upstream's
// answer makes panic. It passes every other answer on unchanged.
func PanicOnAnswer(marker string) http.RoundTripper {
	return panicOnAnswer{base: http.DefaultTransport, marker: []byte(marker)}
}

type panicOnAnswer struct {
	base   http.RoundTripper
	marker []byte
}

func (p panicOnAnswer) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := p.base.RoundTrip(r)
	if err != nil || r.Method != http.MethodPost {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if bytes.Contains(body, p.marker) {
		panic("the upstream answered " + string(p.marker))
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}
