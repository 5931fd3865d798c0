package contracts

import (
	"encoding/json"
	"slices"
)

// Relayed MCP requests beyond tools: what an MCP client connected to
// /<server>/mcp may ask of the upstream server through the workers.
const (
	TypeRPCRequest  = "toolbus.rpc.request.v2"
	TypeRPCResponse = "toolbus.rpc.response.v2"
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
// has Op = Method. Params is the message body (wire.go).
type RPCRequest struct {
	RequestHeader
	Method string          `json:"method"`
	Params json.RawMessage `json:"-"`
}

// RPCResponse is the answer: exactly one of Result (the MCP result object,
// the message body) and Error.
type RPCResponse struct {
	ReplyHeader
	Result json.RawMessage `json:"-"`
}

// Binding is what the request's sealed token must be bound to.
func (r *RPCRequest) Binding(replyTo string) Binding {
	return r.binding(r.Method, "", replyTo, "", r.Params)
}

// Body returns the params: the message body.
func (r *RPCRequest) Body() *json.RawMessage { return &r.Params }

// DecodeRPCRequest decodes and validates an RPCRequest.
func DecodeRPCRequest(w Wire) (*RPCRequest, error) { return decodeBodied[RPCRequest](w) }

// Validate checks the fields a worker relies on.
func (r *RPCRequest) Validate() error {
	if err := r.RequestHeader.Validate(TypeRPCRequest); err != nil {
		return err
	}
	if !RPCMethodAllowed(r.Method) {
		return badMessage("method %q is not relayed", r.Method)
	}
	if len(r.Params) > 0 && !isJSONObject(r.Params) {
		return badMessage("params must be a JSON object")
	}
	return nil
}

// NewRPCResponse is the reply to request requestID: e when set, else result.
func NewRPCResponse(requestID string, result json.RawMessage, e *Error) *RPCResponse {
	return &RPCResponse{ReplyHeader: newReplyHeader(TypeRPCResponse, requestID, e), Result: payload(result, e)}
}

// Payload returns Result.
func (r *RPCResponse) Payload() json.RawMessage { return r.Result }

// Body returns the result: the message body.
func (r *RPCResponse) Body() *json.RawMessage { return &r.Result }

// Validate checks the reply's type and that it has exactly one outcome.
func (r *RPCResponse) Validate() error { return r.ReplyHeader.Validate(TypeRPCResponse, r.Result) }

// DecodeRPCResponse decodes and validates an RPCResponse.
func DecodeRPCResponse(w Wire) (*RPCResponse, error) { return decodeBodied[RPCResponse](w) }

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
