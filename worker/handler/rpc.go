package handler

import (
	"context"
	"encoding/json"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/worker/internal/admit"
)

// rpcName is a relayed request's op in logs and metrics: its method, or
// "rpc" for a method that is not relayed.
func rpcName(r contracts.Request) string {
	if m := r.(*contracts.RPCRequest).Method; contracts.RPCMethodAllowed(m) {
		return m
	}
	return "rpc"
}

// rpcRoute: a relayed request (ping, resources, prompts, completion) has
// its sealed token bound to its method, and no tool filter.
func rpcRoute(msg contracts.Request, reply string) (string, contracts.Binding) {
	return "", msg.(*contracts.RPCRequest).Binding(reply)
}

// relay sends a relayed request upstream; resources/subscribe makes a
// subscription.
func (h *Handler) relay(ctx context.Context, msg contracts.Request, a admit.Admitted) (json.RawMessage, error) {
	req := msg.(*contracts.RPCRequest)
	if req.Method == contracts.MethodSubscribe {
		return h.subscribeResource(ctx, a, req)
	}
	return h.up.Relay(ctx, a.Server, a.Token, req.Method, req.Params)
}

// subscribeResource makes a resource subscription for the request's caller
// (its identity: subscriber) on this worker's client of
// the server; the upstream's updates go to contracts.NotifySubject(server,
// subscriber).
func (h *Handler) subscribeResource(ctx context.Context, a admit.Admitted, req *contracts.RPCRequest) (json.RawMessage, error) {
	var p struct {
		URI string `json:"uri"`
	}
	if json.Unmarshal(req.Params, &p) != nil || p.URI == "" {
		return nil, contracts.NewError(contracts.CodeInvalidRequest, "resources/subscribe needs a uri")
	}
	if err := h.up.Subscribe(ctx, a.Server, a.Token, subscriber(&req.RequestHeader, a.Token), p.URI); err != nil {
		return nil, err
	}
	return json.RawMessage(`{}`), nil
}
