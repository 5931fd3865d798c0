package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/mark3labs/mcp-go/mcp"
)

// ClientRequests answers a request the upstream sends to the MCP client
// during a call (sampling/createMessage, elicitation/create): params is the
// request's params object, the result is the client's result object. An
// error is sent to the upstream as a JSON-RPC error with its text.
type ClientRequests func(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, error)

// ClientCaps are the kinds of requests a caller's MCP client answers.
type ClientCaps uint8

const (
	// CapSampling: the client answers sampling/createMessage.
	CapSampling ClientCaps = 1 << iota
	// CapElicitation: the client answers elicitation/create.
	CapElicitation
)

// WithClientRequests relays the upstream's sampling (if caps has
// CapSampling) and elicitation (CapElicitation) requests made during the
// call to fn. The call uses a pooled client that declares exactly those
// capabilities to the upstream (and speaks 2025-11-25, see newClient);
// without this option, one that declares neither, so the upstream does not
// ask.
//
// A request is matched to its call by the context mcp-go hands the handler
// when the request arrives on the call's own response stream (streamable
// HTTP elicitation) or within the call (the 2026 multi-round-trip
// protocol). Where it arrives on a stream shared by the client's calls
// (mcp-go servers send sampling on the standalone GET stream; SSE and stdio
// have only one stream), it goes to the call when exactly one call that
// takes requests runs on the pooled client, and is refused (ErrNoClient)
// when several of the same user's calls run at once.
func WithClientRequests(caps ClientCaps, fn ClientRequests) CallOption {
	return func(o *callOptions) { o.caps, o.clientRequests = caps, fn }
}

// ErrNoClient is the error a client request gets when no call can answer it.
var ErrNoClient = errors.New("toolbus: no MCP client can answer this request (the call was not made by an MCP client that takes requests, or several calls share the upstream's stream)")

type clientRequestsKey struct{}

// clientRoutes are the calls on one pooled client that take client
// requests, for transports whose requests carry no call context.
type clientRoutes struct {
	mu    sync.Mutex
	seq   uint64
	calls map[uint64]ClientRequests
}

// register adds fn and returns the context that names it to the handler and
// a function that removes it.
func (r *clientRoutes) register(ctx context.Context, fn ClientRequests) (context.Context, func()) {
	r.mu.Lock()
	if r.calls == nil {
		r.calls = make(map[uint64]ClientRequests)
	}
	r.seq++
	id := r.seq
	r.calls[id] = fn
	r.mu.Unlock()
	return context.WithValue(ctx, clientRequestsKey{}, fn), func() {
		r.mu.Lock()
		delete(r.calls, id)
		r.mu.Unlock()
	}
}

// route returns the function that answers a request handled with ctx.
func (r *clientRoutes) route(ctx context.Context) (ClientRequests, error) {
	if fn, ok := ctx.Value(clientRequestsKey{}).(ClientRequests); ok {
		return fn, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.calls) != 1 {
		return nil, ErrNoClient
	}
	for _, fn := range r.calls {
		return fn, nil
	}
	return nil, ErrNoClient
}

// forward sends one request's params through the route of ctx and decodes
// the result into out.
func (r *clientRoutes) forward(ctx context.Context, method string, params, out any) error {
	fn, err := r.route(ctx)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(params)
	if err != nil {
		return fmt.Errorf("encoding the %s params: %w", method, err)
	}
	res, err := fn(ctx, method, raw)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(res, out); err != nil {
		return fmt.Errorf("the client's %s result: %w", method, err)
	}
	return nil
}

// clientHandler is the sampling and elicitation handler of one pooled
// client: mcp-go declares both capabilities to the upstream because it is
// set, and every request goes to the call it belongs to.
type clientHandler struct{ routes *clientRoutes }

func (h clientHandler) CreateMessage(ctx context.Context, req mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
	var out mcp.CreateMessageResult
	if err := h.routes.forward(ctx, string(mcp.MethodSamplingCreateMessage), req.CreateMessageParams, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func (h clientHandler) Elicit(ctx context.Context, req mcp.ElicitationRequest) (*mcp.ElicitationResult, error) {
	var out mcp.ElicitationResult
	if err := h.routes.forward(ctx, string(mcp.MethodElicitationCreate), req.Params, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
