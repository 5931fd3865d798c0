package handler

import (
	"context"
	"encoding/json"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
)

// HandleRPC handles an RPCRequest (a relayed ping, resources, prompts or
// completion request) received on subject with reply subject reply, as
// HandleCall handles a CallRequest, and returns the encoded RPCResponse, or
// nil when the message is too malformed to answer. The checks are the same
// (decoding, the subject's server, the sealed token bound to the method);
// there is no per-tool filter.
func (h *Handler) HandleRPC(ctx context.Context, subject, reply string, data []byte) []byte {
	o := &outcome{start: h.now()}
	defer h.logOutcome(o)
	subjectServer, subjectOK := contracts.ServerFromRPCSubject(subject)
	o.server = subjectServer

	req, err := contracts.DecodeRPCRequest(data)
	if err != nil {
		o.op = "rpc"
		o.requestID = salvageRequestID(data)
		o.err, o.reason = contracts.NewError(contracts.CodeInvalidRequest, "malformed relayed request"), clip(err.Error())
		if o.requestID == "" {
			return nil
		}
		return encodeRPC(o.requestID, nil, o.err)
	}
	o.op, o.requestID, o.keyID, o.tokenFP = req.Method, req.RequestID, req.KeyID, req.TokenFP

	result, e := h.rpc(ctx, o, req, subjectServer, subjectOK, reply)
	o.err = e
	return encodeRPC(req.RequestID, result, e)
}

func (h *Handler) rpc(ctx context.Context, o *outcome, req *contracts.RPCRequest, subjectServer string, subjectOK bool, reply string) (_ json.RawMessage, e *contracts.Error) {
	srv, e := h.server(o, req.Server, subjectServer, subjectOK, req.Token != nil)
	if e != nil {
		return nil, e
	}
	token, e := h.open(o, srv, req.Token, req.Binding(reply), req.Expires())
	if e != nil {
		return nil, e
	}
	ctx, cancel := context.WithTimeout(ctx, boundTimeout(req.Timeout(), srv))
	defer cancel()
	ctx, obs := h.metrics.StartUpstream(ctx, h.tracer, req.Method, srv.Name, "")
	defer func() { obs.End(e) }()
	if req.Method == contracts.MethodSubscribe {
		return h.subscribeResource(ctx, o, srv, req, token)
	}
	result, err := h.up.Relay(ctx, srv, token, req.Method, req.Params)
	if err != nil {
		return nil, h.upstreamError(o, err)
	}
	return result, nil
}

// RejectRPC is RejectCall for an RPCRequest.
func RejectRPC(data []byte, e *contracts.Error) []byte {
	id := salvageRequestID(data)
	if id == "" {
		return nil
	}
	return encodeRPC(id, nil, e)
}

func encodeRPC(requestID string, result json.RawMessage, e *contracts.Error) []byte {
	resp := contracts.RPCResponse{Type: contracts.TypeRPCResponse, RequestID: requestID, Error: e}
	if e == nil {
		resp.Result = result
	}
	return mustEncode(resp, requestID, contracts.TypeRPCResponse)
}

// subscribeResource makes a resource subscription for the request's caller (its
// gateway key and credential fingerprint) on this worker's client of srv;
// the upstream's updates go to contracts.NotifySubject(server, subscriber).
func (h *Handler) subscribeResource(ctx context.Context, o *outcome, srv *config.Server, req *contracts.RPCRequest, token contracts.Token) (json.RawMessage, *contracts.Error) {
	var p struct {
		URI string `json:"uri"`
	}
	if json.Unmarshal(req.Params, &p) != nil || p.URI == "" {
		return nil, contracts.NewError(contracts.CodeInvalidRequest, "resources/subscribe needs a uri")
	}
	if err := h.up.Subscribe(ctx, srv, token, contracts.Subscriber(req.KeyID, callerFP(token, req.TokenFP)), p.URI); err != nil {
		return nil, h.upstreamError(o, err)
	}
	return json.RawMessage(`{}`), nil
}
