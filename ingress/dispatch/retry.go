package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/toolbus/toolbus/contracts"
)

// A worker answers overloaded only for a request that reached no upstream:
// it had no free call slot (NATS picks a queue-group member at random, so
// another worker may well have one), or it was stopping. Such a request is
// sent once more, freshly sealed, while most of its budget is left; the
// second answer stands. Nothing else is retried: any other failure may
// have reached the MCP server, and a tool call is not idempotent.

// Call sends c to a worker of c.Server and returns the MCP CallToolResult.
// An overloaded answer that came back quickly is retried once (see above).
//
// When ctx is cancelled before the answer comes (the client went away), the
// call's cancellation is announced (CancelCall): the worker running it
// cancels its upstream call and frees its slot, rather than run it for
// nobody.
func (d *Dispatcher) Call(ctx context.Context, requestID string, c Call) (json.RawMessage, *contracts.Error) {
	if d.admit != nil {
		release, cerr := d.admit(c.KeyID, c.Caller, c.Server)
		if cerr != nil {
			return nil, cerr
		}
		defer release()
	}
	res, cerr := d.retrying(ctx, requestID, c.Server, c.Timeout, func(timeout time.Duration) (json.RawMessage, *contracts.Error) {
		c.Timeout = timeout
		return d.call(ctx, requestID, c)
	})
	if cerr != nil && errors.Is(ctx.Err(), context.Canceled) {
		_ = d.CancelCall(requestID)
	}
	return res, cerr
}

// List asks a worker of l.Server for the server's tools (a JSON array). An
// overloaded answer that came back quickly is retried once.
func (d *Dispatcher) List(ctx context.Context, requestID string, l List) (json.RawMessage, *contracts.Error) {
	return d.retrying(ctx, requestID, l.Server, l.Timeout, func(timeout time.Duration) (json.RawMessage, *contracts.Error) {
		l.Timeout = timeout
		return d.list(ctx, requestID, l)
	})
}

// retrying runs attempt with timeout, and once more with what is left of
// it when retryBudget allows.
func (d *Dispatcher) retrying(ctx context.Context, requestID, server string, timeout time.Duration, attempt func(time.Duration) (json.RawMessage, *contracts.Error)) (json.RawMessage, *contracts.Error) {
	start := d.now()
	res, err := attempt(timeout)
	if left, ok := d.retryBudget(ctx, err, start, timeout); ok {
		d.log.Debug().Str("request_id", requestID).Str("server", server).Msg("worker overloaded: trying another")
		res, err = attempt(left)
	}
	return res, err
}

// retryBudget reports whether a request that failed with err after
// starting at start may be sent again, and with what timeout: only an
// overloaded answer, with at least half of timeout left and ctx alive.
func (d *Dispatcher) retryBudget(ctx context.Context, err *contracts.Error, start time.Time, timeout time.Duration) (time.Duration, bool) {
	if err == nil || err.Code != contracts.CodeOverloaded || ctx.Err() != nil {
		return 0, false
	}
	left := timeout - d.now().Sub(start)
	return left, left >= timeout/2 && left > 0
}
