package httpapi

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/telemetry"
	"github.com/toolbus/toolbus/ingress/limits"
)

// limitKeyRate takes one request from the key's rate budget (ingress/limits),
// before anything else is done for the request: 429 rate_limited beyond it.
func limitKeyRate(ls *limits.Set) gin.HandlerFunc {
	return func(c *gin.Context) {
		cl := caller(c)
		if e := ls.Allow(cl.Key.Name, cl.Key.Limits, cl.Key.IdentityLimits, cl.Owner()); e != nil {
			abortWithError(c, e)
			return
		}
		c.Next()
	}
}

// limitKeyRequests holds one of the key's request slots for the request:
// 429 rate_limited when it has none left. It comes after readBodyFirst, so
// that a request whose body has not arrived holds none.
func limitKeyRequests(ls *limits.Set) gin.HandlerFunc {
	return func(c *gin.Context) {
		cl := caller(c)
		release, e := ls.Request(cl.Key.Name, cl.Key.Limits, cl.Key.IdentityLimits, cl.Owner())
		if e != nil {
			abortWithError(c, e)
			return
		}
		defer release()
		c.Next()
	}
}

// limitKeyStreams holds one of the key's stream slots for a long-lived
// request (an MCP GET stream).
func limitKeyStreams(ls *limits.Set) gin.HandlerFunc {
	return func(c *gin.Context) {
		cl := caller(c)
		release, e := ls.Stream(cl.Key.Name, cl.Key.Limits, cl.Key.IdentityLimits, cl.Owner())
		if e != nil {
			abortWithError(c, e)
			return
		}
		defer release()
		c.Next()
	}
}

// readBodyFirst reads the request's body (bounded by limitBody) within
// timeout, before the request takes a slot - its key's or the ingress's -
// so that a client that sends its headers and then stalls holds none; one
// that has not sent its body within timeout is answered 400. The body is
// kept for readBody, and handed to handlers that read c.Request.Body
// themselves (the MCP endpoint) from memory.
func readBodyFirst(timeout time.Duration) gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.ContentLength == 0 {
			c.Next()
			return
		}
		deadline := setReadDeadline(c.Writer, time.Now().Add(timeout))
		data, err := readAll(c.Request.Body, c.Request.ContentLength)
		if err != nil {
			// The connection is not reused: net/http would otherwise try
			// to read the rest of the body before answering.
			c.Header("Connection", "close")
			var tooLarge *http.MaxBytesError
			switch {
			case errors.As(err, &tooLarge):
				abortWithError(c, contracts.NewError(contracts.CodeRequestTooLarge, "the body is larger than %d bytes", tooLarge.Limit))
			case errors.Is(err, os.ErrDeadlineExceeded):
				abortWithError(c, contracts.NewError(contracts.CodeInvalidRequest, "the body did not arrive within %s", timeout))
			default:
				abortWithError(c, contracts.NewError(contracts.CodeInvalidRequest, "reading the body failed"))
			}
			return
		}
		if deadline {
			_ = setReadDeadline(c.Writer, time.Time{})
		}
		// Read to its end: closing it tells net/http that nothing is left
		// to discard before the response.
		_ = c.Request.Body.Close()
		telemetry.Step(c.Request.Context(), telemetry.StepBodyRead)
		st := stateOf(c)
		st.body.data, st.bodyRead = data, true
		st.body.r.Reset(data)
		c.Request.Body = http.NoBody
		if len(data) > 0 {
			c.Request.Body = &st.body
		}
		c.Next()
	}
}

// setReadDeadline sets the read deadline of w's connection, as
// http.ResponseController does (without its allocations), and reports
// whether it could.
func setReadDeadline(w http.ResponseWriter, t time.Time) bool {
	for {
		switch u := w.(type) {
		case interface{ SetReadDeadline(time.Time) error }:
			return u.SetReadDeadline(t) == nil
		case interface{ Unwrap() http.ResponseWriter }:
			w = u.Unwrap()
		default:
			return false
		}
	}
}

// Bounds of readAll's first buffer.
const (
	minBodyBuffer = 512
	// maxBodyBuffer bounds what a declared Content-Length reserves before
	// the bytes arrive: a client that declares a large body and stalls
	// holds no more (the rest grows as it comes).
	maxBodyBuffer = 64 << 10
)

// readAll reads r to its end into a buffer sized for the declared length
// (-1: unknown), one byte more so that the end is seen without growing it.
func readAll(r io.Reader, declared int64) ([]byte, error) {
	size := minBodyBuffer
	if declared >= 0 {
		size = int(min(declared, maxBodyBuffer)) + 1
	}
	b := make([]byte, 0, size)
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			if err == io.EOF {
				return b, nil
			}
			return nil, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}

// memoryBody is a request's body read from memory: what readBody returns,
// and the body handlers that read c.Request.Body themselves (the MCP
// endpoint) read.
type memoryBody struct {
	data []byte
	r    bytes.Reader
}

func (b *memoryBody) Read(p []byte) (int, error) { return b.r.Read(p) }

func (b *memoryBody) WriteTo(w io.Writer) (int64, error) { return b.r.WriteTo(w) }

func (b *memoryBody) Close() error { return nil }
