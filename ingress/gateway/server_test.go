package gateway_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/ingress/gateway"
	"github.com/toolbus/toolbus/ingress/httpapi"
	"github.com/toolbus/toolbus/ingress/internal/gatewaytest"
)

// serve serves g's first ingress the way the ingress binary does
// (gateway.Listen, gateway.NewServer) on 127.0.0.1:0 and returns its
// address.
func serve(t *testing.T, g *gatewaytest.Gateway) string {
	t.Helper()
	ln, err := gateway.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := gateway.NewServer(g.Cfg, g.Handler)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// rawConn is a client connection that speaks raw bytes.
type rawConn struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dial(t *testing.T, addr string) *rawConn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.SetDeadline(time.Now().Add(contractstest.WaitTimeout)); err != nil {
		t.Fatal(err)
	}
	return &rawConn{t: t, conn: conn, r: bufio.NewReader(conn)}
}

// send writes raw and reads one response, whole.
func (c *rawConn) send(raw string) (*http.Response, []byte) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, raw); err != nil {
		c.t.Fatal(err)
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		c.t.Fatalf("reading the answer to %.60q: %v", raw, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		c.t.Fatal(err)
	}
	return resp, body
}

// closed checks that the server closed the connection.
func (c *rawConn) closed(what string) {
	c.t.Helper()
	if n, err := c.r.Read(make([]byte, 1)); err != io.EOF {
		c.t.Fatalf("%s: the connection is still open (read %d bytes, %v), want it closed", what, n, err)
	}
}

// jsonError checks resp is the JSON error code with status, a correct
// Content-Length, and Connection: close.
func jsonError(t *testing.T, what string, resp *http.Response, body []byte, status int, code string) {
	t.Helper()
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
		Detail struct {
			Error string `json:"error"`
		} `json:"detail"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("%s: %d %q is not the JSON error: %v", what, resp.StatusCode, body, err)
	}
	if resp.StatusCode != status || e.Error.Code != code || e.Detail.Error != code || e.Error.Message == "" {
		t.Fatalf("%s: %d %s, want %d %s", what, resp.StatusCode, body, status, code)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s: Content-Type %q, want application/json", what, ct)
	}
	if resp.ContentLength != int64(len(body)) || !resp.Close {
		t.Fatalf("%s: Content-Length %d for %d bytes, Connection close %v", what, resp.ContentLength, len(body), resp.Close)
	}
}

// The errors Go's HTTP server writes itself, before any handler, are the
// JSON error too, with Go's status; the connection then closes. A
// keep-alive connection that served requests gets the same, and serves
// requests as before until then.
func TestServer_GoErrorsAreJSON(t *testing.T) {
	g := gatewaytest.Start(t, gatewaytest.DemoOnly())
	addr := serve(t, g)
	bigHeader := strings.Repeat("a", httpapi.ServerMaxHeaderBytes+8<<10)
	for _, tc := range []struct {
		name, raw string
		status    int
		code      string
		message   string
	}{
		{"a malformed request line", "GARBAGE\r\n\r\n", 400, "invalid_request", "not valid HTTP/1.1"},
		{"a malformed header line", "GET /healthz HTTP/1.1\r\nHost: localhost\r\nno colon here\r\n\r\n", 400, "invalid_request", "not valid HTTP/1.1"},
		{"an invalid header name", "GET /healthz HTTP/1.1\r\nHost: localhost\r\nBad Name: x\r\n\r\n", 400, "invalid_request", "not valid HTTP/1.1"},
		{"headers over Go's bound", "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: " + bigHeader + "\r\n\r\n", 431, "headers_too_large", "larger than"},
		{"HTTP/1.1 without Host", "GET /healthz HTTP/1.1\r\n\r\n", 400, "invalid_request", "missing required Host header"},
		{"an unsupported Transfer-Encoding", "POST /mcp/tools/call HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "unsupported_protocol", "Transfer-Encoding"},
		{"an HTTP version Go does not serve over HTTP/1", "GET /healthz HTTP/2.0\r\nHost: localhost\r\n\r\n", 505, "unsupported_protocol", "HTTP version"},
		{"an Expect other than 100-continue", "GET /healthz HTTP/1.1\r\nHost: localhost\r\nExpect: teapot\r\n\r\n", 417, "invalid_request", "Expect"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, addr)
			resp, body := c.send(tc.raw)
			jsonError(t, tc.name, resp, body, tc.status, tc.code)
			if !strings.Contains(string(body), tc.message) {
				t.Fatalf("message %s, want it to say %q", body, tc.message)
			}
			c.closed(tc.name)
		})
	}

	t.Run("on a keep-alive connection after served requests", func(t *testing.T) {
		c := dial(t, addr)
		healthz := "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"
		resp, first := c.send(healthz)
		if resp.StatusCode != http.StatusOK || resp.Close {
			t.Fatalf("healthz: %d %s (close %v)", resp.StatusCode, first, resp.Close)
		}
		// A handler's own JSON error passes unchanged, and the connection
		// stays open.
		resp, body := c.send("GET /nope HTTP/1.1\r\nHost: localhost\r\n\r\n")
		if resp.StatusCode != http.StatusNotFound || resp.Header.Get("X-Request-Id") == "" || resp.Close ||
			!strings.Contains(string(body), `"not_found"`) {
			t.Fatalf("a handler's 404: %d %v %s", resp.StatusCode, resp.Header, body)
		}
		// A tool call, with a body.
		call := `{"name":"demo-echo","arguments":{"text":"hi"}}`
		resp, body = c.send("POST /mcp/tools/call HTTP/1.1\r\nHost: localhost\r\nx-litellm-key: " + gatewaytest.MasterKey +
			"\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(call)) + "\r\n\r\n" + call)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "hi") {
			t.Fatalf("a tool call on the kept-alive connection: %d %s", resp.StatusCode, body)
		}
		if resp, again := c.send(healthz); resp.StatusCode != http.StatusOK || string(again) != string(first) {
			t.Fatalf("healthz again: %d %s", resp.StatusCode, again)
		}
		resp, body = c.send("GET /healthz HTTP/1.1\r\n\r\n")
		jsonError(t, "no Host after served requests", resp, body, 400, "invalid_request")
		c.closed("after the error")
	})
}
