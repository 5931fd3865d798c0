package contracts

import (
	"encoding/json"
	"slices"
	"time"
)

// Relayed MCP requests beyond tools: what an MCP client connected to
// /<server>/mcp may ask of the upstream server through the workers.
const (
	TypeRPCRequest  = "toolbus.rpc.request.v1"
	TypeRPCResponse = "toolbus.rpc.response.v1"
	TypeCallEvent   = "toolbus.call.event.v1"
)

// RPCMethods are the MCP methods relayed on RPCSubject. Anything else is
// refused by both sides.
var RPCMethods = []string{
	"ping",
	"resources/list", "resources/read", "resources/templates/list", MethodSubscribe,
	"prompts/list", "prompts/get",
	"completion/complete",
}

// RPCMethodAllowed reports whether method may be relayed.
func RPCMethodAllowed(method string) bool { return slices.Contains(RPCMethods, method) }

// RPCRequest relays one MCP request to a server. Its sealed token's binding
// has Op = Method.
type RPCRequest struct {
	Type          string          `json:"type"`
	RequestID     string          `json:"request_id"`
	Server        string          `json:"server"`
	Method        string          `json:"method"`
	Params        json.RawMessage `json:"params,omitempty"`
	KeyID         string          `json:"key_id"`
	TimeoutMS     int64           `json:"timeout_ms"`
	ExpiresUnixMS int64           `json:"expires_unix_ms"`
	Token         *Sealed         `json:"token,omitempty"`
	TokenFP       string          `json:"token_fp,omitempty"`
}

// RPCResponse is the answer: exactly one of Result (the MCP result object)
// and Error.
type RPCResponse struct {
	Type      string          `json:"type"`
	RequestID string          `json:"request_id"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *Error          `json:"error,omitempty"`
}

// Timeout returns TimeoutMS as a duration.
func (r *RPCRequest) Timeout() time.Duration { return time.Duration(r.TimeoutMS) * time.Millisecond }

// Expires returns ExpiresUnixMS as a time.
func (r *RPCRequest) Expires() time.Time { return time.UnixMilli(r.ExpiresUnixMS) }

// Binding is what the request's sealed token must be bound to.
func (r *RPCRequest) Binding(replyTo string) Binding {
	return Binding{Op: r.Method, RequestID: r.RequestID, Server: r.Server, KeyID: r.KeyID, ReplyTo: replyTo, Expires: r.Expires()}
}

// DecodeRPCRequest decodes and validates an RPCRequest.
func DecodeRPCRequest(data []byte) (*RPCRequest, error) {
	var r RPCRequest
	if err := decode(data, &r); err != nil {
		return nil, err
	}
	if r.Type != TypeRPCRequest {
		return nil, badMessage("type %q, want %q", r.Type, TypeRPCRequest)
	}
	if !RPCMethodAllowed(r.Method) {
		return nil, badMessage("method %q is not relayed", r.Method)
	}
	if len(r.Params) > 0 && !isJSONObject(r.Params) {
		return nil, badMessage("params must be a JSON object")
	}
	if err := validateCommon(r.RequestID, r.Server, r.KeyID, r.TimeoutMS, r.ExpiresUnixMS, r.Token); err != nil {
		return nil, err
	}
	return &r, nil
}

// DecodeRPCResponse decodes and validates an RPCResponse.
func DecodeRPCResponse(data []byte) (*RPCResponse, error) {
	var r RPCResponse
	if err := decode(data, &r); err != nil {
		return nil, err
	}
	if r.Type != TypeRPCResponse {
		return nil, badMessage("type %q, want %q", r.Type, TypeRPCResponse)
	}
	if err := validateOutcome(len(r.Result) > 0, r.Error); err != nil {
		return nil, err
	}
	return &r, nil
}

// CallEvent is a message from the upstream during a call, published on the
// call's EventsTo subject: a progress update, a log message, or a request
// to the client (see ClientRequest).
type CallEvent struct {
	Type      string       `json:"type"`
	RequestID string       `json:"request_id"`
	Progress  *JobProgress `json:"progress,omitempty"`
	// Log is the params of an MCP notifications/message, as sent.
	Log json.RawMessage `json:"log,omitempty"`
	// Request asks the client something (sampling, elicitation); the
	// worker waits for a ClientAnswer on AnswerSubject.
	Request *ClientRequest `json:"request,omitempty"`
}
