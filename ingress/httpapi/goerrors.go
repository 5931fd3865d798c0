package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/toolbus/toolbus/contracts"
)

// Go's HTTP server answers some requests itself, before any handler runs,
// by writing a canned response straight to the connection (net/http's
// conn.serve): a header block over the server's MaxHeaderBytes (431), a
// malformed request line or header, HTTP/1.1 without Host (400, with or
// without Go's reason), a transfer coding it does not implement (501), an
// HTTP version it does not serve (505):
//
//	HTTP/1.1 <status>\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n<text>
//
// and an Expect other than 100-continue (417, with an empty body).
// JSONErrors wraps the ingress's listener so that these go out in the
// JSON error shape of every other error, with their status kept.

// goErrorHeaders are the headers of Go's canned errors, in Go's order. A
// response written through a handler never has them so: Go writes a
// handler's own headers first (sorted: Connection before Content-Type),
// then Date, Content-Length, Content-Type and Connection.
const goErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// goUnsupportedTE is the text of Go's 501.
const goUnsupportedTE = "Unsupported transfer encoding"

// Go's 417: "HTTP/1.1 417 Expectation Failed\r\nConnection: close\r\nDate:
// <29 bytes>\r\nContent-Length: 0\r\n\r\n" (no handler of the ingress
// answers 417).
const (
	go417Head = "HTTP/1.1 417 Expectation Failed\r\nConnection: close\r\nDate: "
	go417Tail = "\r\nContent-Length: 0\r\n\r\n"
	go417Len  = len(go417Head) + len(http.TimeFormat) + len(go417Tail)
)

// maxGoError bounds the length of a write that may be one of Go's canned
// errors (they are under 256 bytes); longer writes are passed at once.
const maxGoError = 1024

// JSONErrors wraps ln so that the canned errors Go's HTTP server writes
// itself are sent as the JSON error (errorBody) with the same status,
// Content-Type application/json and a correct Content-Length; the
// connection still closes after them. Every other write passes unchanged:
// a write is rewritten only when it is, whole and exactly, one of those
// responses, which no handler's response is.
func JSONErrors(ln net.Listener) net.Listener { return jsonErrorListener{ln} }

type jsonErrorListener struct{ net.Listener }

func (l jsonErrorListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &jsonErrorConn{Conn: c}, nil
}

// jsonErrorConn is a connection whose writes of Go's canned errors are
// rewritten (JSONErrors). Every write is checked, not only the first: a
// keep-alive connection may be refused a later request after serving
// others.
type jsonErrorConn struct{ net.Conn }

func (c *jsonErrorConn) Write(p []byte) (int, error) {
	if len(p) > maxGoError || len(p) < len("HTTP/1.1 400 ") || p[9] != '4' && p[9] != '5' || string(p[:9]) != "HTTP/1.1 " {
		return c.Conn.Write(p)
	}
	out := goErrorAsJSON(p)
	if out == nil {
		return c.Conn.Write(p)
	}
	if _, err := c.Conn.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// CloseWrite half-closes the connection as the one it wraps would: Go's
// server does so after its 431.
func (c *jsonErrorConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// ReadFrom keeps the wrapped connection's (a TCP connection's sendfile and
// splice); Go's canned errors are never written through it.
func (c *jsonErrorConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// goErrorAsJSON is p, one of Go's canned errors, as the JSON error; nil
// when p is anything else.
func goErrorAsJSON(p []byte) []byte {
	if len(p) == go417Len && string(p[:len(go417Head)]) == go417Head && string(p[len(p)-len(go417Tail):]) == go417Tail {
		return goErrorResponse(http.StatusExpectationFailed,
			contracts.NewError(contracts.CodeInvalidRequest, "the request's Expect header asks for what the gateway does not do (only 100-continue is)"))
	}
	end := bytes.IndexByte(p, '\r')
	if end < 0 || !bytes.HasPrefix(p[end:], []byte(goErrorHeaders)) {
		return nil
	}
	status, body := string(p[len("HTTP/1.1 "):end]), string(p[end+len(goErrorHeaders):])
	if len(status) < 5 || status[3] != ' ' || strings.ContainsAny(body, "\r\n") {
		return nil
	}
	code, err := strconv.Atoi(status[:3])
	if err != nil {
		return nil
	}
	// Go's reason, if any, follows the status text: "400 Bad Request:
	// missing required Host header".
	reason, text := status[4:], http.StatusText(code)
	detail, ok := strings.CutPrefix(reason, text+": ")
	if !ok {
		if reason != text {
			return nil
		}
		detail = ""
	}
	var e *contracts.Error
	switch {
	case code == http.StatusRequestHeaderFieldsTooLarge && body == status && detail == "":
		e = contracts.NewError(contracts.CodeHeadersTooLarge, "the request's headers are larger than %d bytes", MaxHeaderBytes)
	case code == http.StatusBadRequest && body == status:
		e = contracts.NewError(contracts.CodeInvalidRequest, "the request is not valid HTTP/1.1 (its request line, a header or its framing)")
		if detail != "" {
			e = contracts.NewError(contracts.CodeInvalidRequest, "the request is not valid HTTP/1.1: %s", contracts.Clip(detail))
		}
	case code == http.StatusNotImplemented && body == goUnsupportedTE && detail == "":
		e = contracts.NewError(contracts.CodeUnsupportedProtocol, "the request's Transfer-Encoding is one the gateway does not implement")
	case code == http.StatusHTTPVersionNotSupported && body == status:
		e = contracts.NewError(contracts.CodeUnsupportedProtocol, "the request's HTTP version is not served here (HTTP/1.x)")
	default:
		return nil
	}
	return goErrorResponse(code, e)
}

// goErrorResponse is a whole HTTP/1.1 response: status, e as the JSON
// error body, and Connection: close.
func goErrorResponse(status int, e *contracts.Error) []byte {
	body, err := json.Marshal(errorBody{Error: e, Detail: errorDetail{Error: string(e.Code), Message: e.Message}})
	if err != nil {
		return nil
	}
	out := make([]byte, 0, 160+len(body))
	out = append(out, "HTTP/1.1 "...)
	out = strconv.AppendInt(out, int64(status), 10)
	out = append(out, ' ')
	out = append(out, http.StatusText(status)...)
	out = append(out, "\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: "...)
	out = strconv.AppendInt(out, int64(len(body)), 10)
	out = append(out, "\r\nConnection: close\r\n\r\n"...)
	return append(out, body...)
}
