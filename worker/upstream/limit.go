package upstream

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"sync/atomic"
)

// errResultTooLarge ends the reading of an upstream answer larger than the
// server's max_result_bytes.
var errResultTooLarge = errors.New("the MCP server's answer exceeds max_result_bytes")

// resultLimit bounds what is read of the upstream's HTTP answers: max bytes
// per JSON body, per event of an event stream (each event carries one
// JSON-RPC message). hit records that a body went over it, so the call that
// read it fails with result_too_large whatever mcp-go made of the read
// error.
type resultLimit struct {
	max int64
	hit atomic.Bool
}

func newResultLimit(max int64) *resultLimit { return &resultLimit{max: max} }

// exceeded reports whether lim (nil: none) stopped a body.
func (lim *resultLimit) exceeded() bool { return lim != nil && lim.hit.Load() }

type resultLimitKey struct{}

func withResultLimit(ctx context.Context, lim *resultLimit) context.Context {
	return context.WithValue(ctx, resultLimitKey{}, lim)
}

// limitBody wraps resp's body with the limit of the request's context, if
// any.
func limitBody(req *http.Request, resp *http.Response) {
	lim, ok := req.Context().Value(resultLimitKey{}).(*resultLimit)
	if !ok || lim == nil || lim.max <= 0 || resp.Body == nil {
		return
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// A failure's body is never shown to anyone (errors.go): read no
		// more than a JSON-RPC error needs, and fail the call by its status.
		resp.Body = truncatedBody{Reader: io.LimitReader(resp.Body, maxErrorBody), Closer: resp.Body}
		return
	}
	mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	resp.Body = &limitedBody{rc: resp.Body, lim: lim, stream: mediaType == "text/event-stream"}
}

// maxErrorBody bounds what is read of an HTTP failure's body.
const maxErrorBody = 64 << 10

type truncatedBody struct {
	io.Reader
	io.Closer
}

// limitedBody fails with errResultTooLarge once more than lim.max bytes were
// read (of the current event, on a stream). The caller then closes it,
// which closes the connection: the rest is never read.
type limitedBody struct {
	rc     io.ReadCloser
	lim    *resultLimit
	stream bool
	n      int64 // bytes of the body, or of the current event
	eol    bool  // the last byte read ended a line (stream)
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.n > b.lim.max {
		return 0, errResultTooLarge
	}
	n, err := b.rc.Read(p)
	if !b.stream {
		b.n += int64(n)
	} else {
		for _, c := range p[:n] {
			switch {
			case c == '\n' && b.eol: // a blank line ends the event
				b.n = 0
			case c == '\n':
				b.eol = true
			case c != '\r':
				b.eol = false
			}
			b.n++
			if b.n > b.lim.max {
				break
			}
		}
	}
	if b.n > b.lim.max {
		b.lim.hit.Store(true)
		return 0, errResultTooLarge
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }
