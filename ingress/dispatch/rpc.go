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
	wait := r.Timeout + replyGrace
	req := contracts.RPCRequest{
		Type: contracts.TypeRPCRequest, RequestID: requestID, Server: r.Server, Method: r.Method,
		Params: r.Params, KeyID: r.KeyID, TimeoutMS: r.Timeout.Milliseconds(), ExpiresUnixMS: d.expires(wait),
	}
	var cerr *contracts.Error
	if req.Token, req.TokenFP, cerr = d.sealFor(r.Token, req.Binding(d.replySubject(requestID))); cerr != nil {
		return nil, cerr
	}
	m, cerr := d.roundTrip(ctx, contracts.RPCSubject(r.Server), requestID, &req, wait, eventSink{})
	if cerr != nil {
		return nil, cerr
	}
	resp, err := contracts.DecodeRPCResponse(m.Data)
	if err != nil {
		return nil, d.unreadable(requestID, err)
	}
	return d.outcome(requestID, resp.RequestID, resp.Result, resp.Error)
}
