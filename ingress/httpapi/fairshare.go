package httpapi

import (
	"bytes"
	"errors"
	"net/http"
	"os"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/telemetry"
	"github.com/toolbus/toolbus/ingress/limits"
)

// bodyKey is where readBodyFirst keeps the body in the gin context.
const bodyKey = "toolbus.body"

// limitKeyRate takes one request from the key's rate budget (ingress/limits),
// before anything else is done for the request: 429 rate_limited beyond it.
func limitKeyRate(ls *limits.Set) gin.HandlerFunc {
	return func(c *gin.Context) {
		if e := ls.Allow(caller(c).Key.Name, caller(c).Key.Limits, caller(c).Key.IdentityLimits, caller(c).Owner()); e != nil {
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
		release, e := ls.Request(caller(c).Key.Name, caller(c).Key.Limits, caller(c).Key.IdentityLimits, caller(c).Owner())
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
		release, e := ls.Stream(caller(c).Key.Name, caller(c).Key.Limits, caller(c).Key.IdentityLimits, caller(c).Owner())
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
		rc := http.NewResponseController(c.Writer)
		deadline := rc.SetReadDeadline(time.Now().Add(timeout)) == nil
		var buf bytes.Buffer
		_, err := buf.ReadFrom(c.Request.Body)
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
			_ = rc.SetReadDeadline(time.Time{})
		}
		data := buf.Bytes()
		telemetry.Step(c.Request.Context(), telemetry.StepBodyRead)
		c.Set(bodyKey, data)
		c.Request.Body = http.NoBody
		if len(data) > 0 {
			c.Request.Body = readCloser{bytes.NewReader(data)}
		}
		c.Next()
	}
}

// readCloser is a body read from memory.
type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }
