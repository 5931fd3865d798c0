package dispatch

import (
	"context"
	"encoding/json"
	"time"

	"github.com/toolbus/toolbus/contracts"
)

// RPC is one relayed MCP request (a method of contracts.RPCMethods).
type RPC struct {
	KeyID  string
	Server string
	Method string
	// Params travel as the request's body exactly as given (see
	// Call.Arguments).
	Params json.RawMessage
	Token  contracts.Token
	// Caller is the caller's identity (contracts.RequestHeader.Caller):
	// a resources/subscribe's subscriber.
	Caller  string
	Timeout time.Duration
}

// RPC sends r to a worker of r.Server and returns the MCP result object.
func (d *Dispatcher) RPC(ctx context.Context, requestID string, r RPC) (json.RawMessage, *contracts.Error) {
	if !contracts.RPCMethodAllowed(r.Method) {
		return nil, contracts.NewError(contracts.CodeInvalidRequest, "method %q is not relayed", contracts.Clip(r.Method))
	}
	var resp contracts.RPCResponse
	return d.roundTrip(ctx, trip{
		subject: contracts.RPCSubject(r.Server), typ: contracts.TypeRPCRequest, requestID: requestID,
		keyID: r.KeyID, server: r.Server, token: r.Token, caller: r.Caller, timeout: r.Timeout,
	}, &contracts.RPCRequest{Method: r.Method, Params: r.Params}, &resp)
}
