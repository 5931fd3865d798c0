package handler

import (
	"strconv"
	"time"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/worker/internal/panics"
)

// maxLoggedFP bounds a token fingerprint taken from a message for logging.
const maxLoggedFP = 32

// outcome is what one request's log line reports.
type outcome struct {
	op, requestID, keyID, server, tool, tokenFP string
	start                                       time.Time
	err                                         *contracts.Error
	reason                                      string // why, for logs only (never a secret)
}

func (h *Handler) logOutcome(o *outcome) {
	ev := h.log.Info()
	status := "ok"
	if o.err != nil {
		status = string(o.err.Code)
		ev = h.log.Warn()
		if o.err.Code == contracts.CodeUnknownTool || o.err.Code == contracts.CodeUpstreamUnauthorized || o.err.Code == contracts.CodeForbidden {
			ev = h.log.Info()
		}
	}
	if len(o.tokenFP) > maxLoggedFP {
		o.tokenFP = o.tokenFP[:maxLoggedFP]
	}
	if o.err != nil {
		h.metrics.Request(o.op, o.server, o.tool, string(o.err.Code))
	} else {
		h.metrics.Request(o.op, o.server, o.tool, "")
	}
	ev = ev.Str("op", o.op).
		Str("request_id", o.requestID).
		Str("key_id", o.keyID).
		Str("server", o.server).
		Str("tool", o.tool).
		Str("status", status).
		RawJSON("duration_ms", appendMillis(make([]byte, 0, 24), h.now().Sub(o.start))).
		Str("token_fp", o.tokenFP)
	if o.reason != "" {
		ev = ev.Str("reason", o.reason)
	}
	ev.Msg("request")
}

// logPanic logs a recovered panic with the request's identity.
func (h *Handler) logPanic(o *outcome, v any) {
	panics.Log(h.log.Error().Str("op", o.op).Str("request_id", o.requestID).Str("server", o.server).Str("tool", o.tool), v)
}

// appendMillis appends d in milliseconds, to the microsecond, as a JSON
// number: what zerolog's Float64 writes of float64(d.Microseconds())/1000
// (the shortest decimal, "0.482", "12", "1.5"), without formatting a float.
func appendMillis(b []byte, d time.Duration) []byte {
	us := d.Microseconds()
	if us < 0 {
		b = append(b, '-')
		us = -us
	}
	b = strconv.AppendInt(b, us/1000, 10)
	frac := us % 1000
	if frac == 0 {
		return b
	}
	b = append(b, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
	for b[len(b)-1] == '0' {
		b = b[:len(b)-1]
	}
	return b
}
