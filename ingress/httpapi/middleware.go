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
	"github.com/toolbus/toolbus/ingress/auth"
	"github.com/toolbus/toolbus/ingress/dispatch"
)

// Gin context keys.
const (
	ctxRequestID = "toolbus.request_id"
	ctxPrincipal = "toolbus.principal"
	ctxErrorCode = "toolbus.error_code"
)

// Header limits. Values over them are refused before any other work.
const (
	maxHeaderValue    = 8 << 10
	maxRequestIDLen   = 128
	headerRequestID   = "X-Request-Id"
	authorizationHdr  = "Authorization"
	serverAuthzPrefix = "x-mcp-"
	serverAuthzSuffix = "-authorization"
)

var clientRequestID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// requestID gives every request a unique id, returned in X-Request-Id. A
// well-formed client id is logged beside it, never used on the wire.
func requestID() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := dispatch.NewRequestID()
		c.Set(ctxRequestID, id)
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
				log.Error().Str("request_id", c.GetString(ctxRequestID)).Str("route", c.FullPath()).
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
// duration, key name. Call details (server, tool, token fingerprint) are
// added by the handlers through logFields.
func accessLog(log zerolog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		ev := log.Info()
		if c.Writer.Status() >= 500 {
			ev = log.Warn()
		}
		ev = ev.Str("request_id", c.GetString(ctxRequestID)).
			Str("method", c.Request.Method).Str("route", c.FullPath()).
			Int("status", c.Writer.Status()).Float64("duration_ms", float64(time.Since(start).Microseconds())/1000)
		if id := c.GetHeader(headerRequestID); id != "" && clientRequestID.MatchString(id) {
			ev = ev.Str("client_request_id", id)
		}
		if code := c.GetString(ctxErrorCode); code != "" {
			ev = ev.Str("code", code)
		}
		if p, ok := c.Get(ctxPrincipal); ok {
			ev = ev.Str("key", p.(*auth.Principal).Name)
		}
		for _, k := range []string{"server", "tool", "token_fp", "job_id", "mcp_method"} {
			if v := c.GetString("log." + k); v != "" {
				ev = ev.Str(k, v)
			}
		}
		ev.Msg("request")
	}
}

// logField adds a field to the request's log line.
func logField(c *gin.Context, key, value string) { c.Set("log."+key, value) }

// checkHeaders refuses header values that are over-long or carry control
// characters (CR/LF injection). Go's HTTP/1 parser already refuses most of
// these on the wire; this covers every other way a request can reach the
// router (HTTP/2, proxies, in-process callers).
func checkHeaders() gin.HandlerFunc {
	return func(c *gin.Context) {
		for name, values := range c.Request.Header {
			for _, v := range values {
				if len(v) > maxHeaderValue {
					abortWithError(c, contracts.NewError(contracts.CodeInvalidRequest, "header %s is longer than %d bytes", name, maxHeaderValue))
					return
				}
				if strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }) {
					abortWithError(c, contracts.NewError(contracts.CodeInvalidRequest, "header %s contains control characters", name))
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

// authenticate checks the gateway key and stores the principal.
func authenticate(keys *auth.Keys) gin.HandlerFunc {
	return func(c *gin.Context) {
		p, err := keys.Authenticate(c.Request.Header)
		if err != nil {
			abortWithError(c, err)
			return
		}
		c.Set(ctxPrincipal, p)
		c.Next()
	}
}

func principal(c *gin.Context) *auth.Principal { return c.MustGet(ctxPrincipal).(*auth.Principal) }

// userToken returns the credential for server: x-mcp-<server>-authorization
// if present, else Authorization. Servers with auth none get nothing.
func userToken(c *gin.Context, server string, authNone bool) contracts.Token {
	if authNone {
		return contracts.Token{}
	}
	if v := c.GetHeader(serverAuthzPrefix + server + serverAuthzSuffix); v != "" {
		return contracts.NewToken(v)
	}
	return contracts.NewToken(c.GetHeader(authorizationHdr))
}
