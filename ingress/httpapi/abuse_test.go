package httpapi_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/ingress/internal/gatewaytest"
)

// Arguments with a number that is valid JSON but no float64 (1e400) are
// refused at the ingress on every door - 400 invalid_request, not
// retryable - and never reach a worker.
func TestAbuse_UnencodableNumbersRefusedAtTheIngress(t *testing.T) {
	g := startGateway(t)
	h := gatewaytest.Headers(masterKey, "")
	args := `{"text":"x","n":1e400}`
	for _, path := range []string{"/mcp/tools/call", "/mcp-rest/tools/call", "/v1/calls"} {
		resp := g.do(t, http.MethodPost, path, h, `{"name":"counted-echo","arguments":`+args+`}`)
		e, _ := resp.JSON(t)["error"].(map[string]any)
		if resp.Status != http.StatusBadRequest || resp.ErrorCode(t) != "invalid_request" || e["retryable"] != false {
			t.Errorf("%s: %d %s, want 400 invalid_request, not retryable", path, resp.Status, resp.Body)
		}
	}
	h["Accept"] = "application/json, text/event-stream"
	resp := g.do(t, http.MethodPost, "/mcp", h,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"counted-echo","arguments":`+args+`}}`)
	if body := string(resp.Body); !strings.Contains(body, `"code":"invalid_request"`) || !strings.Contains(body, `"retryable":false`) {
		t.Errorf("/mcp tools/call: %d %s, want the range refusal", resp.Status, resp.Body)
	}
	if got := g.Calls.Stats(); got.Started != 0 {
		t.Errorf("the upstream got %d calls", got.Started)
	}
}

// held is a call running in the background until stop: its client
// disconnects then.
type held struct {
	cancel context.CancelFunc
	done   chan int // the status, or 0 when the client gave up
}

// hold posts body to url+path with headers in the background.
func hold(t *testing.T, url, path string, headers map[string]string, body string) *held {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), contractstest.WaitTimeout)
	h := &held{cancel: cancel, done: make(chan int, 1)}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			h.done <- 0
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		h.done <- resp.StatusCode
	}()
	t.Cleanup(h.stop)
	return h
}

// stop disconnects the client and waits for its goroutine.
func (h *held) stop() {
	h.cancel()
	<-h.done
	h.done <- 0 // for a second stop
}

// A REST client that goes away cancels its call on the worker: the
// upstream call ends, and the worker's slot is free, long before the call's
// own end (its budget, two minutes, is longer than the wait).
func TestAbuse_DisconnectedRESTClientCancelsItsCall(t *testing.T) {
	g := startGateway(t)
	h := hold(t, g.URL, "/mcp-rest/tools/call", gatewaytest.Headers(masterKey, ""), `{"name":"counted-slow","arguments":{"ms":120000},"timeout_seconds":120}`)
	contractstest.Eventually(t, "the call to run upstream", func() bool { return g.Calls.Stats().Running == 1 })
	h.stop()
	contractstest.Eventually(t, "the upstream call to be cancelled", func() bool {
		s := g.Calls.Stats()
		return s.Running == 0 && s.Cancelled == 1
	})
}

// keyB is a second key, for the fair-share tests.
const keyB = "sk-team-b"

// withFairShareKeys adds team-b (every server) and gives team-a limits.
func withFairShareKeys(limits config.KeyLimits) func(*config.File) {
	return func(c *config.File) {
		for i := range c.Keys {
			if c.Keys[i].Name == "team-a" {
				c.Keys[i].Servers, c.Keys[i].Tools, c.Keys[i].Limits = nil, nil, limits
			}
		}
		c.Keys = append(c.Keys, config.Key{Name: "team-b", Key: keyB})
	}
}

// Connections of key A that send their headers and then stall their body
// hold no slot - neither the ingress's in-flight slots nor key A's own - so
// key B is served while they stall.
func TestAbuse_StalledBodiesHoldNoSlot(t *testing.T) {
	const maxInFlight, stalled = 16, 64
	g := startGateway(t, withFairShareKeys(config.KeyLimits{MaxRequests: 8}), func(c *config.File) {
		c.Ingress.MaxInFlight = maxInFlight
	})
	addr := strings.TrimPrefix(g.URL, "http://")
	for range stalled {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		// With Expect: 100-continue the server answers "100 Continue" when
		// the router starts reading the body: the request has passed the
		// key check and is where it stalls (one that had not would prove
		// nothing).
		head := "POST /mcp/tools/call HTTP/1.1\r\nHost: localhost\r\nx-litellm-key: " + teamAKey +
			"\r\nContent-Type: application/json\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n"
		if _, err := conn.Write([]byte(head)); err != nil {
			t.Fatal(err)
		}
		if err := conn.SetReadDeadline(time.Now().Add(contractstest.WaitTimeout)); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil || !strings.Contains(line, " 100 ") {
			t.Fatalf("stalled request: %q %v, want 100 Continue", line, err)
		}
		if _, err := conn.Write([]byte(`{"name":`)); err != nil {
			t.Fatal(err)
		}
	}
	for _, key := range []string{keyB, teamAKey} {
		resp := g.do(t, http.MethodPost, "/mcp/tools/call", gatewaytest.Headers(key, ""), `{"name":"demo-echo","arguments":{"text":"hi"}}`)
		if resp.Status != http.StatusOK {
			t.Fatalf("key %.9s while key A stalls %d bodies: %d %s", key, stalled, resp.Status, resp.Body)
		}
	}
}

// A key's limit on requests in flight holds across ingress replicas: each
// of two replicas on one NATS admits its share (half), so that the key has
// at most its limit in flight in all; another key is not affected.
func TestAbuse_KeyConcurrencyAcrossReplicas(t *testing.T) {
	g := startGateway(t, withFairShareKeys(config.KeyLimits{MaxRequests: 2}))
	second := g.NewIngress(t)
	contractstest.Eventually(t, "the replicas to count each other", func() bool {
		return g.Ingress.Presence.Replicas() == 2 && second.Gateway.Presence.Replicas() == 2
	})
	slow := `{"name":"counted-slow","arguments":{"ms":120000},"timeout_seconds":120}`
	echo := `{"name":"demo-echo","arguments":{"text":"hi"}}`
	a, b := gatewaytest.Headers(teamAKey, ""), gatewaytest.Headers(keyB, "")
	hold(t, g.URL, "/mcp/tools/call", a, slow)
	contractstest.Eventually(t, "the first call to run", func() bool { return g.Calls.Stats().Running == 1 })
	// The first replica's share (1) is taken.
	resp := doURL(t, g.URL, http.MethodPost, "/mcp/tools/call", a, echo)
	if resp.Status != http.StatusTooManyRequests || resp.ErrorCode(t) != "rate_limited" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("key A over its share on the first replica: %d %s (Retry-After %q), want 429 rate_limited", resp.Status, resp.Body, resp.Header.Get("Retry-After"))
	}
	// The second replica has its own.
	hold(t, second.URL, "/mcp/tools/call", a, slow)
	contractstest.Eventually(t, "the second call to run", func() bool { return g.Calls.Stats().Running == 2 })
	for _, url := range []string{g.URL, second.URL} {
		if resp := doURL(t, url, http.MethodPost, "/mcp/tools/call", a, echo); resp.Status != http.StatusTooManyRequests {
			t.Errorf("key A's third request in flight: %d %s, want 429", resp.Status, resp.Body)
		}
		if resp := doURL(t, url, http.MethodPost, "/mcp/tools/call", b, echo); resp.Status != http.StatusOK {
			t.Errorf("key B while key A is at its limit: %d %s", resp.Status, resp.Body)
		}
	}
}

// A key's long-lived requests - MCP GET streams and long polls - are
// bounded by its max_streams; another key is not affected.
func TestAbuse_KeyStreamLimit(t *testing.T) {
	g := startGateway(t, withFairShareKeys(config.KeyLimits{MaxStreams: 1}))
	ctx, cancel := context.WithTimeout(context.Background(), contractstest.WaitTimeout)
	defer cancel()
	open := func(key string) *http.Response {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.URL+"/sse", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("x-litellm-key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	if resp := open(teamAKey); resp.StatusCode != http.StatusOK {
		t.Fatalf("key A's first stream: %d", resp.StatusCode)
	}
	if resp := open(teamAKey); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("key A's second stream: %d, want 429", resp.StatusCode)
	}
	resp := g.do(t, http.MethodGet, "/v1/calls/019ac5e1f2a3b4c5d6e7f8091a2b?wait=5s", gatewaytest.Headers(teamAKey, ""), "")
	if resp.Status != http.StatusTooManyRequests || resp.ErrorCode(t) != "rate_limited" {
		t.Fatalf("key A's long poll while it holds its stream: %d %s, want 429 rate_limited", resp.Status, resp.Body)
	}
	if resp := open(keyB); resp.StatusCode != http.StatusOK {
		t.Fatalf("key B's stream: %d", resp.StatusCode)
	}
}

// A body that does not arrive within ingress.body_timeout is answered 400.
func TestAbuse_BodyTimeout(t *testing.T) {
	g := startGateway(t, func(c *config.File) { c.Ingress.BodyTimeout = config.Duration(100 * time.Millisecond) })
	conn, err := net.Dial("tcp", strings.TrimPrefix(g.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	head := "POST /mcp/tools/call HTTP/1.1\r\nHost: localhost\r\nx-litellm-key: " + masterKey +
		"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"name\":"
	if _, err := conn.Write([]byte(head)); err != nil {
		t.Fatal(err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(contractstest.WaitTimeout)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "did not arrive") {
		t.Fatalf("stalled body: %d %s, want 400", resp.StatusCode, body)
	}
}
