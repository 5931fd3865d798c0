package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
)

// Relay sends one MCP request other than a tool call (one of
// contracts.RPCMethods: ping, resources, prompts, completion) to srv with
// the user's credential, and returns the MCP result object. params is the
// request's params object as the client sent it (empty for none); one page
// is asked for at a time, with the client's cursor. Credentials, pooling and
// errors are as for CallTool; a JSON-RPC error of the upstream is an *Error
// whose Wire code says what kind (see relayWire).
func (p *Pool) Relay(ctx context.Context, srv *config.Server, token contracts.Token, method string, params json.RawMessage) (json.RawMessage, error) {
	if !contracts.RPCMethodAllowed(method) {
		return nil, &Error{Wire: contracts.NewError(contracts.CodeInvalidRequest, "method %q is not relayed", method), Detail: "method not relayed"}
	}
	if len(params) == 0 || string(params) == "null" {
		params = json.RawMessage("{}")
	}
	var out json.RawMessage
	err := p.do(ctx, srv, token, 0, func(ctx context.Context, e *entry) error {
		res, err := relay(ctx, e.c, method, params)
		if err != nil {
			if wire := relayWire(err); wire != nil {
				// Classify finds the wire error first; the cause stays for
				// the pool's own decisions and the log detail.
				return errors.Join(wire, err)
			}
			return err
		}
		out, err = json.Marshal(res)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// errBadParams marks params that do not decode as the method's params.
var errBadParams = errors.New("params do not match the method")

// relay decodes params into the typed request of method and sends it with
// mcp-go's client, which adds what the negotiated protocol needs. Requests
// are built fresh (mcp-go drops the headers of one with Method set).
func relay(ctx context.Context, c *client.Client, method string, params json.RawMessage) (any, error) {
	decode := func(v any) error {
		if err := json.Unmarshal(params, v); err != nil {
			return fmt.Errorf("%w: %v", errBadParams, err)
		}
		return nil
	}
	switch method {
	case string(mcp.MethodPing):
		return struct{}{}, c.Ping(ctx)
	case string(mcp.MethodResourcesList):
		var req mcp.ListResourcesRequest
		if err := decode(&req.Params); err != nil {
			return nil, err
		}
		return c.ListResourcesByPage(ctx, req)
	case string(mcp.MethodResourcesTemplatesList):
		var req mcp.ListResourceTemplatesRequest
		if err := decode(&req.Params); err != nil {
			return nil, err
		}
		return c.ListResourceTemplatesByPage(ctx, req)
	case string(mcp.MethodResourcesRead):
		var req mcp.ReadResourceRequest
		if err := decode(&req.Params); err != nil {
			return nil, err
		}
		return c.ReadResource(ctx, req)
	case string(mcp.MethodPromptsList):
		var req mcp.ListPromptsRequest
		if err := decode(&req.Params); err != nil {
			return nil, err
		}
		return c.ListPromptsByPage(ctx, req)
	case string(mcp.MethodPromptsGet):
		var req mcp.GetPromptRequest
		if err := decode(&req.Params); err != nil {
			return nil, err
		}
		return c.GetPrompt(ctx, req)
	case string(mcp.MethodCompletionComplete):
		var req mcp.CompleteRequest
		if err := decode(&req.Params); err != nil {
			return nil, err
		}
		return c.Complete(ctx, req)
	}
	return nil, fmt.Errorf("%w: %s", mcp.ErrMethodNotFound, method)
}

// relayWire classifies the JSON-RPC errors an upstream answers resources,
// prompts and completion with, which mean something else than for a tool
// call (a missing prompt is not an unknown tool); nil for other failures.
func relayWire(err error) *contracts.Error {
	switch {
	case errors.Is(err, errBadParams):
		return contracts.NewError(contracts.CodeInvalidRequest, "the request's params do not fit the method")
	case errors.Is(err, mcp.ErrResourceNotFound):
		return contracts.NewError(contracts.CodeNotFound, "the MCP server has no such resource")
	case errors.Is(err, mcp.ErrMethodNotFound):
		return contracts.NewError(contracts.CodeNotFound, "the MCP server does not support this method")
	case errors.Is(err, mcp.ErrInvalidParams):
		return contracts.NewError(contracts.CodeInvalidRequest, "the MCP server rejected the request's parameters")
	}
	return nil
}
