package upstream

import (
	"errors"
	"io"
	"net/http"
	"strings"
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

// limitBody wraps resp's body with lim (the request's scope's limit; nil:
// none).
func limitBody(lim *resultLimit, resp *http.Response) {
	if lim == nil || lim.max <= 0 || resp.Body == nil {
		return
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// A failure's body is never shown to anyone (errors.go): read no
		// more than a JSON-RPC error needs, and fail the call by its status.
		resp.Body = truncatedBody{Reader: io.LimitReader(resp.Body, maxErrorBody), Closer: resp.Body}
		return
	}
	resp.Body = &limitedBody{rc: resp.Body, lim: lim, stream: hasMediaType(resp.Header, "text/event-stream")}
}

// hasMediaType reports whether h's Content-Type has the media type want
// (lower case) as mime.ParseMediaType (mcp-go's reading of it) finds it -
// the type before any parameter, trimmed, in any case - without parsing the
// parameters, for which ParseMediaType builds a map. (Where ParseMediaType
// refuses the parameters, mcp-go fails the request whatever is read.)
func hasMediaType(h http.Header, want string) bool {
	base, _, _ := strings.Cut(h.Get("Content-Type"), ";")
	base = strings.TrimSpace(base)
	if len(base) != len(want) {
		return false
	}
	for i := range len(base) {
		c := base[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != want[i] {
			return false
		}
	}
	return true
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
