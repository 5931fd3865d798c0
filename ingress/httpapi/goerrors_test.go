package httpapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// recordConn is a net.Conn that records what is written to it.
type recordConn struct {
	net.Conn
	buf bytes.Buffer
}

func (c *recordConn) Write(p []byte) (int, error) { return c.buf.Write(p) }

// discardConn is a net.Conn whose writes go nowhere.
type discardConn struct{ net.Conn }

func (discardConn) Write(p []byte) (int, error) { return len(p), nil }

// goCanned is a canned error as net/http's conn.serve formats it.
func goCanned(status, body string) string {
	return "HTTP/1.1 " + status + goErrorHeaders + body
}

func TestJSONErrors_RewritesGoCannedErrors(t *testing.T) {
	for _, tc := range []struct {
		write  string
		status int
		code   string
	}{
		{goCanned("431 Request Header Fields Too Large", "431 Request Header Fields Too Large"), 431, "headers_too_large"},
		{goCanned("400 Bad Request", "400 Bad Request"), 400, "invalid_request"},
		{goCanned("400 Bad Request: missing required Host header", "400 Bad Request: missing required Host header"), 400, "invalid_request"},
		{goCanned("400 Bad Request: invalid header value", "400 Bad Request: invalid header value"), 400, "invalid_request"},
		{goCanned("501 Not Implemented", "Unsupported transfer encoding"), 501, "unsupported_protocol"},
		{goCanned("505 HTTP Version Not Supported: unsupported protocol version", "505 HTTP Version Not Supported: unsupported protocol version"), 505, "unsupported_protocol"},
		{"HTTP/1.1 417 Expectation Failed\r\nConnection: close\r\nDate: Mon, 30 Nov 2026 06:00:00 GMT\r\nContent-Length: 0\r\n\r\n", 417, "invalid_request"},
	} {
		c := &recordConn{}
		n, err := (&jsonErrorConn{Conn: c}).Write([]byte(tc.write))
		if err != nil || n != len(tc.write) {
			t.Fatalf("%.40q: wrote %d, %v; want %d", tc.write, n, err, len(tc.write))
		}
		resp, err := http.ReadResponse(bufio.NewReader(&c.buf), nil)
		if err != nil {
			t.Fatalf("%.40q: %v", tc.write, err)
		}
		body, _ := io.ReadAll(resp.Body)
		var e errorBody
		if err := json.Unmarshal(body, &e); err != nil || e.Error == nil {
			t.Fatalf("%.40q: body %q: %v", tc.write, body, err)
		}
		if resp.StatusCode != tc.status || string(e.Error.Code) != tc.code || e.Detail.Error != tc.code ||
			resp.ContentLength != int64(len(body)) || !resp.Close || resp.Header.Get("Content-Type") != "application/json; charset=utf-8" {
			t.Fatalf("%.40q: %d %v %s; want %d %s, Content-Length, Connection: close", tc.write, resp.StatusCode, resp.Header, body, tc.status, tc.code)
		}
		if c.buf.Len() != 0 {
			t.Fatalf("%.40q: %d bytes after the response", tc.write, c.buf.Len())
		}
	}
}

// Every other write passes unchanged: handlers' responses (their errors
// included), anything that is not exactly one of Go's canned errors.
func TestJSONErrors_LeavesEverythingElse(t *testing.T) {
	canned := goCanned("400 Bad Request", "400 Bad Request")
	for _, write := range []string{
		"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nX-Request-Id: x\r\nDate: Mon, 30 Nov 2026 06:00:00 GMT\r\nContent-Length: 2\r\n\r\n{}",
		"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json; charset=utf-8\r\nDate: Mon, 30 Nov 2026 06:00:00 GMT\r\nContent-Length: 2\r\n\r\n{}",
		// A handler's plain-text error: Go writes Date first.
		"HTTP/1.1 400 Bad Request\r\nDate: Mon, 30 Nov 2026 06:00:00 GMT\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request",
		canned + "more", // part of a longer write
		"x" + canned,    // not at the start
		strings.Replace(canned, "HTTP/1.1", "HTTP/1.0", 1),
		goCanned("431 Request Header Fields Too Large", "something else"),
		goCanned("400 Bad Request", "400 Bad Request\r\nX: y"),
		goCanned("400 Bad Requests", "400 Bad Requests"),
		goCanned("400 Bad Request:x", "400 Bad Request:x"),
		goCanned("418 I'm a teapot", "418 I'm a teapot"),
		goCanned("501 Not Implemented", "501 Not Implemented"),
		"HTTP/1.1 417 Expectation Failed\r\nConnection: close\r\nDate: Mon, 30 Nov 2026 06:00:00 GMT\r\nContent-Length: 2\r\n\r\n{}",
		"HTTP/1.1 4",
		"",
		strings.Repeat("HTTP/1.1 400 ", 200),
	} {
		c := &recordConn{}
		n, err := (&jsonErrorConn{Conn: c}).Write([]byte(write))
		if err != nil || n != len(write) || c.buf.String() != write {
			t.Errorf("%.60q was changed to %.60q (%d, %v)", write, c.buf.String(), n, err)
		}
	}
}

// A normal response costs the wrapper no allocation.
func TestJSONErrors_NoAllocationOnNormalWrites(t *testing.T) {
	c := &jsonErrorConn{Conn: discardConn{}}
	for _, write := range [][]byte{
		[]byte("HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nX-Request-Id: 019ac5e1f2a3\r\nDate: Mon, 30 Nov 2026 06:00:00 GMT\r\nContent-Length: 2\r\n\r\n{}"),
		[]byte("HTTP/1.1 404 Not Found\r\nContent-Type: application/json; charset=utf-8\r\nX-Request-Id: 019ac5e1f2a3\r\nDate: Mon, 30 Nov 2026 06:00:00 GMT\r\nContent-Length: 19\r\n\r\n{\"error\":\"nothing\"}"),
		bytes.Repeat([]byte("x"), 4096),
	} {
		if allocs := testing.AllocsPerRun(100, func() { _, _ = c.Write(write) }); allocs != 0 {
			t.Errorf("%.30q: %v allocations per write, want 0", write, allocs)
		}
	}
}

func BenchmarkJSONErrorConn_Write(b *testing.B) {
	c := &jsonErrorConn{Conn: discardConn{}}
	for _, bc := range []struct {
		name  string
		write []byte
	}{
		{"ok", []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nX-Request-Id: 019ac5e1f2a3\r\nDate: Mon, 30 Nov 2026 06:00:00 GMT\r\nContent-Length: 2\r\n\r\n{}")},
		{"handler_error", []byte("HTTP/1.1 404 Not Found\r\nContent-Type: application/json; charset=utf-8\r\nX-Request-Id: 019ac5e1f2a3\r\nDate: Mon, 30 Nov 2026 06:00:00 GMT\r\nContent-Length: 19\r\n\r\n{\"error\":\"nothing\"}")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = c.Write(bc.write)
			}
		})
	}
}
