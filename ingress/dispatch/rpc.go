package dispatch

import (
	"context"
	"encoding/json"
	"time"

	"github.com/toolbus/toolbus/contracts"
)

// RPC is one relayed MCP request (a method of contracts.RPCMethods).
type RPC struct {
	KeyID   string
	Server  string
	Method  string
	Params  json.RawMessage
	Token   contracts.Token
	Timeout time.Duration
}

// RPC sends r to a worker of r.Server and returns the MCP result object.
func (d *Dispatcher) RPC(ctx context.Context, requestID string, r RPC) (json.RawMessage, *contracts.Error) {
	if !contracts.RPCMethodAllowed(r.Method) {
		return nil, contracts.NewError(contracts.CodeInvalidRequest, "method %q is not relayed", r.Method)
	}
	req := contracts.RPCRequest{
		Type: contracts.TypeRPCRequest, RequestID: requestID, Server: r.Server, Method: r.Method,
		Params: r.Params, KeyID: r.KeyID, TimeoutMS: r.Timeout.Milliseconds(),
	}
	wait := r.Timeout + replyGrace
	req.ExpiresUnixMS = d.now().Add(wait + clockSkew).UnixMilli()
	reply := d.replySubject(requestID)
	if !r.Token.IsZero() {
		sealed, err := d.seal(r.Token, req.Binding(reply))
		if err != nil {
			return nil, err
		}
		req.Token, req.TokenFP = sealed, r.Token.Fingerprint()
	}
	m, cerr := d.roundTrip(ctx, contracts.RPCSubject(r.Server), requestID, &req, wait)
	if cerr != nil {
		return nil, cerr
	}
	resp, err := contracts.DecodeRPCResponse(m.Data)
	if err != nil || resp.RequestID != requestID {
		d.log.Error().Str("request_id", requestID).Err(err).Msg("bad reply from worker")
		return nil, contracts.NewError(contracts.CodeInternal, "a worker sent an unreadable reply")
	}
	if resp.Error != nil {
		return nil, resp.Error
	}
	return resp.Result, nil
}
