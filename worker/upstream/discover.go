package upstream

import (
	"context"
	"encoding/json"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/toolbus/toolbus/contracts/config"
)

// discovered is a server/discover result a streamable HTTP server srv gave
// for protocol version: on the 2026-07-28 revision a client's only
// handshake. It says what the server supports and who it is - nothing of
// the user, and no session (the revision has none) - so a new client of
// the same server configuration (one that declares no client capabilities)
// takes it instead of asking again: a new user's first call is one request.
// The client still sends only its own credential set.
type discovered struct {
	srv     *config.Server
	version string
	result  json.RawMessage
}

// discoveringHTTP is mcp-go's streamable HTTP transport, plus server/discover
// answered from the pool's discovered record where it has one, and recorded
// there when the server answers it. Embedding keeps every other method (and
// the interfaces mcp-go asserts) of *StreamableHTTP.
type discoveringHTTP struct {
	*transport.StreamableHTTP
	p   *Pool
	srv *config.Server
	e   *entry
}

func (t *discoveringHTTP) SendRequest(ctx context.Context, req transport.JSONRPCRequest) (*transport.JSONRPCResponse, error) {
	if req.Method != string(mcp.MethodServerDiscover) {
		return t.StreamableHTTP.SendRequest(ctx, req)
	}
	version := requestedVersion(req.Params)
	if result := t.p.discoveredResult(t.srv, version); result != nil {
		// Initialize runs on the connecting goroutine, which reads this.
		t.e.discoverReused = true
		return &transport.JSONRPCResponse{JSONRPC: mcp.JSONRPC_VERSION, ID: req.ID, Result: result}, nil
	}
	resp, err := t.StreamableHTTP.SendRequest(ctx, req)
	if err == nil && resp.Error == nil && version != "" && len(resp.Result) > 0 {
		t.p.recordDiscovered(discovered{srv: t.srv, version: version, result: resp.Result})
	}
	return resp, err
}

// requestedVersion is the protocol version a server/discover request's
// _meta asks for ("" when it names none).
func requestedVersion(params any) string {
	fields, ok := params.(map[string]json.RawMessage)
	if !ok {
		return ""
	}
	var meta map[string]json.RawMessage
	if json.Unmarshal(fields["_meta"], &meta) != nil {
		return ""
	}
	var version string
	if json.Unmarshal(meta[mcp.MetaKeyProtocolVersion], &version) != nil {
		return ""
	}
	return version
}

// discoveredResult returns the result srv gave server/discover for version,
// or nil (also after srv refused a request made on a borrowed handshake).
func (p *Pool) discoveredResult(srv *config.Server, version string) json.RawMessage {
	if version == "" {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	sc := p.servers[srv.Name]
	if sc == nil || sc.discovered.srv != srv || sc.discovered.version != version || sc.refused == srv {
		return nil
	}
	return sc.discovered.result
}

func (p *Pool) recordDiscovered(d discovered) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if sc := p.servers[d.srv.Name]; sc != nil {
		sc.discovered = d
	}
}
