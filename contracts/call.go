package contracts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Message types. A reader rejects a message whose type it does not know.
const (
	TypeCallRequest  = "toolbus.call.request.v1"
	TypeCallResponse = "toolbus.call.response.v1"
	TypeListRequest  = "toolbus.list.request.v1"
	TypeListResponse = "toolbus.list.response.v1"
)

// Operations a sealed token may be bound to.
const (
	OpCall = "tools/call"
	OpList = "tools/list"
)

// Limits on identifier fields, so a decoded message is bounded before use.
const (
	maxIDLen       = 128
	maxToolNameLen = 256
	maxSubjectLen  = 256
)

// CallRequest asks a worker to call one tool on one upstream MCP server.
// It travels on CallSubject(Server).
type CallRequest struct {
	Type      string `json:"type"`
	RequestID string `json:"request_id"`
	Server    string `json:"server"`
	Tool      string `json:"tool"`
	// Arguments is the tool's arguments object, passed upstream unchanged.
	Arguments json.RawMessage `json:"arguments,omitempty"`
	// KeyID names the gateway key that authorised the call (its configured
	// name, never the key itself).
	KeyID string `json:"key_id"`
	// TimeoutMS is the caller's budget for the upstream call. The worker
	// bounds it further by the server's maximum.
	TimeoutMS int64 `json:"timeout_ms"`
	// ExpiresUnixMS is when the sealed token stops opening (Unix ms): the
	// ingress's wait plus a small allowance for clock skew. It is part of the
	// seal's binding.
	ExpiresUnixMS int64 `json:"expires_unix_ms"`
	// Token is the user's credential, sealed to the workers. Absent when the
	// caller sent none or the server takes none.
	Token *Sealed `json:"token,omitempty"`
	// TokenFP is a short fingerprint of the token, for logs and pooling.
	TokenFP string `json:"token_fp,omitempty"`
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
// (an MCP CallToolResult object) and Error is set.
type CallResponse struct {
	Type      string          `json:"type"`
	RequestID string          `json:"request_id"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *Error          `json:"error,omitempty"`
}

// ListRequest asks a worker for the tools of one upstream server, as seen
// with the caller's credential. It travels on ListSubject(Server).
type ListRequest struct {
	Type      string `json:"type"`
	RequestID string `json:"request_id"`
	Server    string `json:"server"`
	KeyID     string `json:"key_id"`
	TimeoutMS int64  `json:"timeout_ms"`
	// ExpiresUnixMS: as in CallRequest.
	ExpiresUnixMS int64   `json:"expires_unix_ms"`
	Token         *Sealed `json:"token,omitempty"`
	TokenFP       string  `json:"token_fp,omitempty"`
}

// ListResponse is a worker's reply to a ListRequest: exactly one of Tools
// (a JSON array of MCP Tool objects) and Error is set.
type ListResponse struct {
	Type      string          `json:"type"`
	RequestID string          `json:"request_id"`
	Tools     json.RawMessage `json:"tools,omitempty"`
	Error     *Error          `json:"error,omitempty"`
}

// ErrBadMessage wraps every decoding and validation failure.
var ErrBadMessage = errors.New("bad message")

func badMessage(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadMessage, fmt.Sprintf(format, args...))
}

// Timeout returns TimeoutMS as a duration.
func (r *CallRequest) Timeout() time.Duration { return time.Duration(r.TimeoutMS) * time.Millisecond }

// Timeout returns TimeoutMS as a duration.
func (r *ListRequest) Timeout() time.Duration { return time.Duration(r.TimeoutMS) * time.Millisecond }

// Expires returns ExpiresUnixMS as a time.
func (r *CallRequest) Expires() time.Time { return time.UnixMilli(r.ExpiresUnixMS) }

// Expires returns ExpiresUnixMS as a time.
func (r *ListRequest) Expires() time.Time { return time.UnixMilli(r.ExpiresUnixMS) }

// Binding is what the request's sealed token must be bound to; replyTo is
// the reply subject the request arrived with. A worker builds it from the
// message it received, never from the sealed field.
func (r *CallRequest) Binding(replyTo string) Binding {
	return Binding{Op: OpCall, RequestID: r.RequestID, Server: r.Server, Tool: r.Tool, KeyID: r.KeyID, ReplyTo: replyTo, EventsTo: r.EventsTo, Expires: r.Expires()}
}

// Binding is what the request's sealed token must be bound to.
func (r *ListRequest) Binding(replyTo string) Binding {
	return Binding{Op: OpList, RequestID: r.RequestID, Server: r.Server, KeyID: r.KeyID, ReplyTo: replyTo, Expires: r.Expires()}
}

// DecodeCallRequest decodes and validates a CallRequest.
func DecodeCallRequest(data []byte) (*CallRequest, error) {
	var r CallRequest
	if err := decode(data, &r); err != nil {
		return nil, err
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// Validate checks the fields a worker relies on.
func (r *CallRequest) Validate() error {
	if r.Type != TypeCallRequest {
		return badMessage("type %q, want %q", r.Type, TypeCallRequest)
	}
	if err := validateCommon(r.RequestID, r.Server, r.KeyID, r.TimeoutMS, r.ExpiresUnixMS, r.Token); err != nil {
		return err
	}
	if r.Tool == "" || len(r.Tool) > maxToolNameLen {
		return badMessage("tool name must be 1 to %d bytes", maxToolNameLen)
	}
	if len(r.Arguments) > 0 && !isJSONObject(r.Arguments) {
		return badMessage("arguments must be a JSON object")
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

// DecodeListRequest decodes and validates a ListRequest.
func DecodeListRequest(data []byte) (*ListRequest, error) {
	var r ListRequest
	if err := decode(data, &r); err != nil {
		return nil, err
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// Validate checks the fields a worker relies on.
func (r *ListRequest) Validate() error {
	if r.Type != TypeListRequest {
		return badMessage("type %q, want %q", r.Type, TypeListRequest)
	}
	return validateCommon(r.RequestID, r.Server, r.KeyID, r.TimeoutMS, r.ExpiresUnixMS, r.Token)
}

// DecodeCallResponse decodes and validates a CallResponse.
func DecodeCallResponse(data []byte) (*CallResponse, error) {
	var r CallResponse
	if err := decode(data, &r); err != nil {
		return nil, err
	}
	if r.Type != TypeCallResponse {
		return nil, badMessage("type %q, want %q", r.Type, TypeCallResponse)
	}
	if err := validateOutcome(len(r.Result) > 0, r.Error); err != nil {
		return nil, err
	}
	return &r, nil
}

// DecodeListResponse decodes and validates a ListResponse.
func DecodeListResponse(data []byte) (*ListResponse, error) {
	var r ListResponse
	if err := decode(data, &r); err != nil {
		return nil, err
	}
	if r.Type != TypeListResponse {
		return nil, badMessage("type %q, want %q", r.Type, TypeListResponse)
	}
	if err := validateOutcome(len(r.Tools) > 0, r.Error); err != nil {
		return nil, err
	}
	return &r, nil
}

func decode(data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return badMessage("%v", err)
	}
	return nil
}

func validateCommon(requestID, server, keyID string, timeoutMS, expiresMS int64, token *Sealed) error {
	switch {
	case requestID == "" || len(requestID) > maxIDLen:
		return badMessage("request_id must be 1 to %d bytes", maxIDLen)
	case !ValidServerName(server):
		return badMessage("invalid server name")
	case len(keyID) > maxIDLen:
		return badMessage("key_id longer than %d bytes", maxIDLen)
	case timeoutMS <= 0:
		return badMessage("timeout_ms must be positive")
	case token != nil && expiresMS <= 0:
		return badMessage("a sealed token needs expires_unix_ms")
	}
	if token != nil {
		return token.validate()
	}
	return nil
}

func validateOutcome(hasResult bool, e *Error) error {
	if hasResult == (e != nil) {
		return badMessage("exactly one of result and error must be set")
	}
	if e != nil && e.Code == "" {
		return badMessage("error without code")
	}
	return nil
}

func isJSONObject(raw json.RawMessage) bool {
	trimmed := bytes.TrimLeft(raw, " \t\r\n")
	return len(trimmed) > 0 && trimmed[0] == '{'
}
