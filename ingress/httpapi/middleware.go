package httpapi

import (
	"errors"
	"net/http"
	"net/netip"
	"strconv"
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

// maxClientRequestID is the longest client X-Request-Id logged.
const maxClientRequestID = 128

// clientRequestID reports whether a client's X-Request-Id is logged:
// 1 to maxClientRequestID characters from [A-Za-z0-9._:-].
func clientRequestID(id string) bool {
	if id == "" || len(id) > maxClientRequestID {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// stateKey is where requestID keeps a request's requestState.
const stateKey = "toolbus.state"

// requestState is what the ingress keeps for one request, allocated once:
// its frontdoor.Request, its body once read (readBodyFirst), and the value
// of its X-Request-Id response header.
type requestState struct {
	fd       frontdoor.Request
	body     memoryBody
	bodyRead bool
	idHeader [1]string
}

// stateOf returns c's requestState (a new one stored now, if requestID did
// not run).
func stateOf(c *gin.Context) *requestState {
	if v, ok := c.Get(stateKey); ok {
		return v.(*requestState)
	}
	st := &requestState{}
	c.Set(stateKey, st)
	return st
}

// requestID gives every request a unique id, returned in X-Request-Id, and
// its frontdoor.Request, where every later step records its decisions. A
// well-formed client id is logged beside it, never used on the wire.
func requestID() gin.HandlerFunc {
	return func(c *gin.Context) {
		st := &requestState{}
		id := dispatch.NewRequestID()
		st.fd.ID, st.idHeader[0] = id, id
		c.Set(stateKey, st)
		frontdoor.Attach(c, &st.fd)
		c.Writer.Header()[headerRequestID] = st.idHeader[:]
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
// trustsProxies says whether the router trusts any proxy's forwarding
// headers (ingress.trusted_proxies; see clientIP).
func accessLog(log zerolog.Logger, trustsProxies bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		status := c.Writer.Status()
		ev := log.Info()
		if status >= 500 {
			ev = log.Warn()
		}
		if ev == nil {
			return
		}
		r := frontdoor.Of(c)
		var ms [24]byte
		ev = ev.Str("request_id", r.ID).
			Str("method", c.Request.Method).Str("route", c.FullPath()).Str("client_ip", clientIP(c, trustsProxies)).
			Int("status", status).RawJSON("duration_ms", appendMillis(ms[:0], time.Since(start).Microseconds()))
		if id := c.GetHeader(headerRequestID); clientRequestID(id) {
			ev = ev.Str("client_request_id", id)
		}
		logNonEmpty(ev, "code", string(r.Code))
		logNonEmpty(ev, "key", r.KeyName())
		logNonEmpty(ev, "server", r.Server)
		logNonEmpty(ev, "tool", r.Tool)
		logNonEmpty(ev, "token_fp", r.TokenFP)
		logNonEmpty(ev, "job_id", r.JobID)
		logNonEmpty(ev, "mcp_method", r.MCPMethod)
		ev.Msg("request")
	}
}

// clientIP is c.ClientIP(). When no proxy is trusted, that is the peer's
// address as net.IP prints it, which for an IPv4 peer is the address as
// the connection gives it: taken as is, without parsing and printing it.
func clientIP(c *gin.Context, trustsProxies bool) string {
	if !trustsProxies {
		if ip := c.RemoteIP(); isIPv4(ip) {
			return ip
		}
	}
	return c.ClientIP()
}

// isIPv4 reports whether s is an IPv4 address in dotted decimal, each
// part without leading zeros: the form net.IP's String writes.
func isIPv4(s string) bool {
	addr, err := netip.ParseAddr(s)
	return err == nil && addr.Is4()
}

func logNonEmpty(ev *zerolog.Event, name, value string) {
	if value != "" {
		ev.Str(name, value)
	}
}

// appendMillis appends us microseconds as a JSON number of milliseconds,
// as zerolog's Float64 writes float64(us)/1000 (shortest form, no
// exponent: 0, 0.001, 1.5, 1234.567; exactly so below 2^43 µs, 101 days),
// without formatting a float.
func appendMillis(dst []byte, us int64) []byte {
	if us < 0 {
		dst, us = append(dst, '-'), -us
	}
	dst = strconv.AppendInt(dst, us/1000, 10)
	if frac := us % 1000; frac != 0 {
		digits := [3]byte{byte('0' + frac/100), byte('0' + frac/10%10), byte('0' + frac%10)}
		n := 3
		for digits[n-1] == '0' {
			n--
		}
		dst = append(append(dst, '.'), digits[:n]...)
	}
	return dst
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
