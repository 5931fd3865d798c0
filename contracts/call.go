package contracts

import (
	"encoding/json"
)

// Message types. A reader rejects a message whose type it does not know.
const (
	// The synchronous kinds are v2 (wire.go): small fields in a NATS
	// header, the payload as the message body.
	TypeCallRequest  = "toolbus.call.request.v2"
	TypeCallResponse = "toolbus.call.response.v2"
	TypeListRequest  = "toolbus.list.request.v2"
	TypeListResponse = "toolbus.list.response.v2"
)

// Operations a sealed token may be bound to.
const (
	OpCall = "tools/call"
	OpList = "tools/list"
)

// CallRequest asks a worker to call one tool on one upstream MCP server.
// It travels on CallSubject(Server); its Arguments are the message body
// (wire.go), its other fields the HeaderRequest header.
type CallRequest struct {
	RequestHeader
	Tool string `json:"tool"`
	// Arguments is the tool's arguments object, passed upstream unchanged:
	// the message body.
	Arguments json.RawMessage `json:"-"`
	// EventsTo, if set, asks the worker to publish the upstream's progress
	// and log notifications as CallEvents on this subject while the call
	// runs. The seal binds it.
	EventsTo string `json:"events_to,omitempty"`
	// ClientRequests lists the requests (ClientRequestMethods) the caller's
	// MCP client answers during the call: the worker relays the upstream's
	// requests of those kinds as CallEvents on EventsTo, and declares only
	// those capabilities to the upstream. Empty: the caller answers none.
	ClientRequests []string `json:"client_requests,omitempty"`
}

// CallResponse is a worker's reply to a CallRequest: exactly one of Result
// (an MCP CallToolResult object, the message body) and Error is set.
type CallResponse struct {
	ReplyHeader
	Result json.RawMessage `json:"-"`
}

// ListRequest asks a worker for the tools of one upstream server, as seen
// with the caller's credential. It travels on ListSubject(Server).
type ListRequest struct {
	RequestHeader
}

// ListResponse is a worker's reply to a ListRequest: exactly one of Tools
// (a JSON array of MCP Tool objects, the message body) and Error is set.
type ListResponse struct {
	ReplyHeader
	Tools json.RawMessage `json:"-"`
}

// Binding is what the request's sealed token must be bound to; replyTo is
// the reply subject the request arrived with. A worker builds it from the
// message it received, never from the sealed field.
func (r *CallRequest) Binding(replyTo string) Binding {
	return r.binding(OpCall, r.Tool, replyTo, r.EventsTo, r.Arguments)
}

// Binding is what the request's sealed token must be bound to.
func (r *ListRequest) Binding(replyTo string) Binding {
	return r.binding(OpList, "", replyTo, "", nil)
}

// Body returns the arguments: the message body.
func (r *CallRequest) Body() *json.RawMessage { return &r.Arguments }

// DecodeCallRequest decodes and validates a CallRequest.
func DecodeCallRequest(w Wire) (*CallRequest, error) { return decodeBodied[CallRequest](w) }

// Validate checks the fields a worker relies on.
func (r *CallRequest) Validate() error {
	if err := r.RequestHeader.Validate(TypeCallRequest); err != nil {
		return err
	}
	if err := validateTool(r.Tool, r.Arguments); err != nil {
		return err
	}
	if len(r.EventsTo) > maxSubjectLen {
		return badMessage("events_to longer than %d bytes", maxSubjectLen)
	}
	for _, m := range r.ClientRequests {
		if !ClientRequestAllowed(m) {
			return badMessage("client request %q is not relayed", m)
		}
	}
	if len(r.ClientRequests) > 0 && r.EventsTo == "" {
		return badMessage("client_requests needs events_to")
	}
	return nil
}

// Body is nil: a ListRequest has no body.
func (r *ListRequest) Body() *json.RawMessage { return nil }

// DecodeListRequest decodes and validates a ListRequest.
func DecodeListRequest(w Wire) (*ListRequest, error) { return decodeBodied[ListRequest](w) }

// Validate checks the fields a worker relies on: a list has no others than
// its header's.
func (r *ListRequest) Validate() error { return r.RequestHeader.Validate(TypeListRequest) }

// NewCallResponse is the reply to request requestID: e when set, else result.
func NewCallResponse(requestID string, result json.RawMessage, e *Error) *CallResponse {
	return &CallResponse{ReplyHeader: newReplyHeader(TypeCallResponse, requestID, e), Result: payload(result, e)}
}

// Payload returns Result.
func (r *CallResponse) Payload() json.RawMessage { return r.Result }

// Body returns the result: the message body.
func (r *CallResponse) Body() *json.RawMessage { return &r.Result }

// Validate checks the reply's type and that it has exactly one outcome.
func (r *CallResponse) Validate() error { return r.ReplyHeader.Validate(TypeCallResponse, r.Result) }

// DecodeCallResponse decodes and validates a CallResponse.
func DecodeCallResponse(w Wire) (*CallResponse, error) { return decodeBodied[CallResponse](w) }

// NewListResponse is the reply to request requestID: e when set, else tools.
func NewListResponse(requestID string, tools json.RawMessage, e *Error) *ListResponse {
	return &ListResponse{ReplyHeader: newReplyHeader(TypeListResponse, requestID, e), Tools: payload(tools, e)}
}

// Payload returns Tools.
func (r *ListResponse) Payload() json.RawMessage { return r.Tools }

// Body returns the tools: the message body.
func (r *ListResponse) Body() *json.RawMessage { return &r.Tools }

// Validate checks the reply's type and that it has exactly one outcome.
func (r *ListResponse) Validate() error { return r.ReplyHeader.Validate(TypeListResponse, r.Tools) }

// DecodeListResponse decodes and validates a ListResponse.
func DecodeListResponse(w Wire) (*ListResponse, error) { return decodeBodied[ListResponse](w) }
