package httpapi

import (
	"errors"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/telemetry"
	"github.com/toolbus/toolbus/ingress/dispatch"
	"github.com/toolbus/toolbus/ingress/frontdoor"
)

// Header limits. Values over them are refused before any other work.
const (
	maxHeaderValue  = 8 << 10
	headerRequestID = "X-Request-Id"
)

// Header size bounds. Go's HTTP server answers headers beyond its
// MaxHeaderBytes itself (431, which JSONErrors turns into the JSON error);
// the ingress sets it to ServerMaxHeaderBytes, and checkHeaders answers
// headers over MaxHeaderBytes (but within Go's bound).
const (
	MaxHeaderBytes       = 64 << 10
	ServerMaxHeaderBytes = 2 * MaxHeaderBytes
)

var clientRequestID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// requestID gives every request a unique id, returned in X-Request-Id, and
// its frontdoor.Request, where every later step records its decisions. A
// well-formed client id is logged beside it, never used on the wire.
func requestID() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := dispatch.NewRequestID()
		frontdoor.Begin(c, id)
		c.Header(headerRequestID, id)
		c.Next()
	}
}

// recovery turns a panic into a JSON 500 with no detail, and logs only the
// route and the panic's type: a panic value may hold request data.
func recovery(log zerolog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if r := recover(); r != nil {
				if err, ok := r.(error); ok && errors.Is(err, http.ErrAbortHandler) {
					panic(r)
				}
				log.Error().Str("request_id", frontdoor.Of(c).ID).Str("route", c.FullPath()).
					Str("panic_type", typeName(r)).Msg("handler panicked")
				abortWithError(c, contracts.NewError(contracts.CodeInternal, "internal error"))
			}
		}()
		c.Next()
	}
}

func typeName(v any) string {
	switch v.(type) {
	case error:
		return "error"
	case string:
		return "string"
	default:
		return "other"
	}
}

// accessLog writes one line per request: request id, route, status, code,
// duration, key name, and what the handlers recorded in the request's
// frontdoor.Request (server, tool, token fingerprint, job, MCP method).
func accessLog(log zerolog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		ev := log.Info()
		if c.Writer.Status() >= 500 {
			ev = log.Warn()
		}
		r := frontdoor.Of(c)
		ev = ev.Str("request_id", r.ID).
			Str("method", c.Request.Method).Str("route", c.FullPath()).Str("client_ip", c.ClientIP()).
			Int("status", c.Writer.Status()).Float64("duration_ms", float64(time.Since(start).Microseconds())/1000)
		if id := c.GetHeader(headerRequestID); id != "" && clientRequestID.MatchString(id) {
			ev = ev.Str("client_request_id", id)
		}
		for _, f := range []struct{ name, value string }{
			{"code", string(r.Code)}, {"key", r.KeyName()}, {"server", r.Server}, {"tool", r.Tool},
			{"token_fp", r.TokenFP}, {"job_id", r.JobID}, {"mcp_method", r.MCPMethod},
		} {
			if f.value != "" {
				ev = ev.Str(f.name, f.value)
			}
		}
		ev.Msg("request")
	}
}

// checkHeaders refuses header values that are over-long or carry control
// characters (CR/LF injection). Go's HTTP/1 parser already refuses most of
// these on the wire; this covers every other way a request can reach the
// router (HTTP/2, proxies, in-process callers).
func checkHeaders() gin.HandlerFunc {
	return func(c *gin.Context) {
		total := 0
		for name, values := range c.Request.Header {
			for _, v := range values {
				if total += len(name) + len(v) + 4; total > MaxHeaderBytes {
					abortWithError(c, contracts.NewError(contracts.CodeHeadersTooLarge, "the request's headers are larger than %d bytes", MaxHeaderBytes))
					return
				}
				if len(v) > maxHeaderValue {
					abortWithError(c, contracts.NewError(contracts.CodeInvalidRequest, "header %s is longer than %d bytes", frontdoor.Clip(name), maxHeaderValue))
					return
				}
				if strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }) {
					abortWithError(c, contracts.NewError(contracts.CodeInvalidRequest, "header %s contains control characters", frontdoor.Clip(name)))
					return
				}
			}
		}
		c.Next()
	}
}

// limitBody caps the request body. The handler that reads it turns the
// limit's error into 413.
func limitBody(maxBytes int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.ContentLength > maxBytes {
			abortWithError(c, contracts.NewError(contracts.CodeRequestTooLarge, "the body is larger than %d bytes", maxBytes))
			return
		}
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxBytes)
		c.Next()
	}
}

// authenticate checks the gateway key and records the caller in the
// request's frontdoor.Request.
func authenticate(policy *frontdoor.Policy) gin.HandlerFunc {
	return func(c *gin.Context) {
		caller, err := policy.Authenticate(c.Request.Header)
		if err != nil {
			if ch := policy.Challenge(c.Request); ch != "" {
				c.Header("WWW-Authenticate", ch)
			}
			abortWithError(c, err)
			return
		}
		frontdoor.Of(c).Caller = caller
		telemetry.Step(c.Request.Context(), telemetry.StepAuthenticated)
		c.Next()
	}
}

// caller is the authenticated caller of a request behind authenticate.
func caller(c *gin.Context) *frontdoor.Caller { return frontdoor.Of(c).Caller }

// checkHost refuses a request that fails the DNS-rebinding protection
// (frontdoor.CheckHost) before the key is even read.
func checkHost() gin.HandlerFunc {
	return func(c *gin.Context) {
		if e := frontdoor.CheckHost(c.Request); e != nil {
			abortWithError(c, e)
			return
		}
		c.Next()
	}
}
