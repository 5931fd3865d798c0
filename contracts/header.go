package contracts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Every request message (CallRequest, ListRequest, RPCRequest, JobRequest)
// embeds one RequestHeader, and every reply (CallResponse, ListResponse,
// RPCResponse) one ReplyHeader: the fields a worker needs to admit a request
// and a caller needs to match and read an answer are written, validated and
// read once. encoding/json puts an embedded struct's fields where it sits,
// so the members of a message are the same as before the headers existed;
// only their order in the encoding changed, which no JSON reader sees.

// Limits on identifier fields, so a decoded message is bounded before use.
const (
	maxIDLen       = 128
	maxToolNameLen = 256
	maxSubjectLen  = 256
)

// RequestHeader is the part every request message shares.
type RequestHeader struct {
	// Type is the message type (TypeCallRequest, ...).
	Type string `json:"type"`
	// RequestID names the request; the reply repeats it. For a JobRequest
	// it is the job id, which travels as "job_id" (see JobRequest).
	RequestID string `json:"request_id"`
	// Server is the upstream MCP server the request is for. A worker takes
	// the server from the subject and refuses a message whose Server differs.
	Server string `json:"server"`
	// KeyID names the gateway key that authorised the request (its
	// configured name, never the key itself).
	KeyID string `json:"key_id"`
	// TimeoutMS is the caller's budget for the upstream call. The worker
	// bounds it further by the server's maximum.
	TimeoutMS int64 `json:"timeout_ms"`
	// ExpiresUnixMS is when the sealed token stops opening (Unix ms): the
	// ingress's wait plus a small allowance for clock skew (for a job, when
	// it must have started). It is part of the seal's binding.
	ExpiresUnixMS int64 `json:"expires_unix_ms"`
	// Token is the user's credential, sealed to the workers. Absent when the
	// caller sent none or the server takes none.
	Token *Sealed `json:"token,omitempty"`
	// TokenFP is a short fingerprint of the token, for logs only.
	TokenFP string `json:"token_fp,omitempty"`
	// Caller is the caller's identity (an Owner tag: a keyed hash of the
	// gateway key and every credential the caller presented), which the
	// worker ties to the caller what outlives the request or answers it:
	// resource subscriptions (their subscriber) and answers to the
	// upstream's requests (ClientAnswer.Caller). The seal binds it.
	Caller string `json:"caller,omitempty"`
}

// Header returns h; through embedding, every request message has it.
func (h *RequestHeader) Header() *RequestHeader { return h }

// Timeout returns TimeoutMS as a duration.
func (h *RequestHeader) Timeout() time.Duration {
	return time.Duration(h.TimeoutMS) * time.Millisecond
}

// Expires returns ExpiresUnixMS as a time.
func (h *RequestHeader) Expires() time.Time { return time.UnixMilli(h.ExpiresUnixMS) }

// Validate checks the header of a message that must have type want: every
// request message's Validate starts here and checks only its own fields
// after it.
func (h *RequestHeader) Validate(want string) error {
	switch {
	case h.Type != want:
		return badMessage("type %q, want %q", h.Type, want)
	case h.RequestID == "" || len(h.RequestID) > maxIDLen:
		return badMessage("request_id must be 1 to %d bytes", maxIDLen)
	case !ServerNameAllowed(h.Server):
		return badMessage("invalid server name")
	case len(h.KeyID) > maxIDLen:
		return badMessage("key_id longer than %d bytes", maxIDLen)
	case h.TimeoutMS <= 0:
		return badMessage("timeout_ms must be positive")
	case h.Caller != "" && !validOwner(h.Caller):
		return badMessage("invalid caller")
	case h.Token != nil && h.ExpiresUnixMS <= 0:
		return badMessage("a sealed token needs expires_unix_ms")
	}
	if h.Token != nil {
		return h.Token.validate()
	}
	return nil
}

// binding is a sealed token's binding: the header's part (and its
// timeout), and the message's own.
func (h *RequestHeader) binding(op, tool, replyTo, eventsTo string, payload []byte) Binding {
	return Binding{Op: op, RequestID: h.RequestID, Server: h.Server, Tool: tool, KeyID: h.KeyID,
		ReplyTo: replyTo, EventsTo: eventsTo, Expires: h.Expires(), Payload: payload, TimeoutMS: h.TimeoutMS, Caller: h.Caller}
}

// Request is a synchronous request message: a RequestHeader, the fields
// of its kind and its body (see wire.go; EncodeRequest, DecodeRequest).
type Request interface {
	Header() *RequestHeader
	// Validate checks the whole message: the header, then its own fields.
	Validate() error
	Bodied
}

// ReplyHeader is the part every reply message shares: exactly one of Error
// and the reply's own payload is set.
type ReplyHeader struct {
	Type      string `json:"type"`
	RequestID string `json:"request_id"`
	Error     *Error `json:"error,omitempty"`
}

// Validate checks the header of a reply that must have type want and
// that the reply carries exactly one of its payload and an error.
func (h *ReplyHeader) Validate(want string, payload json.RawMessage) error {
	if err := checkType(h.Type, want); err != nil {
		return err
	}
	if (len(payload) > 0) == (h.Error != nil) {
		return badMessage("exactly one of result and error must be set")
	}
	if h.Error != nil && h.Error.Code == "" {
		return badMessage("error without code")
	}
	return nil
}

// Reply is a reply message: a ReplyHeader and its payload, the body (see
// wire.go; EncodeReply, DecodeReply).
type Reply interface {
	Reply() *ReplyHeader
	// Payload is the result (tools for a ListResponse); nil with an error.
	Payload() json.RawMessage
	Validate() error
	Bodied
}

func newReplyHeader(typ, requestID string, e *Error) ReplyHeader {
	return ReplyHeader{Type: typ, RequestID: requestID, Error: e}
}

// payload is a reply's payload: none with an error.
func payload(p json.RawMessage, e *Error) json.RawMessage {
	if e != nil {
		return nil
	}
	return p
}

// Reply returns h; through embedding, every reply message has it.
func (h *ReplyHeader) Reply() *ReplyHeader { return h }

// ErrBadMessage wraps every decoding and validation failure.
var ErrBadMessage = errors.New("bad message")

func badMessage(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadMessage, fmt.Sprintf(format, args...))
}

func decode(data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return badMessage("%v", err)
	}
	return nil
}

// checkType refuses a message of type got where one of type want belongs.
func checkType(got, want string) error {
	if got != want {
		return badMessage("type %q, want %q", got, want)
	}
	return nil
}

// decodeValid decodes and validates a message of type T.
func decodeValid[T any, P interface {
	*T
	Validate() error
}](data []byte) (*T, error) {
	var v T
	if err := decode(data, P(&v)); err != nil {
		return nil, err
	}
	if err := P(&v).Validate(); err != nil {
		return nil, err
	}
	return &v, nil
}

// validateTool checks a tool name and its arguments.
func validateTool(tool string, args json.RawMessage) error {
	if tool == "" || len(tool) > maxToolNameLen {
		return badMessage("tool name must be 1 to %d bytes", maxToolNameLen)
	}
	if len(args) > 0 && !isJSONObject(args) {
		return badMessage("arguments must be a JSON object")
	}
	return nil
}

func isJSONObject(raw json.RawMessage) bool {
	trimmed := bytes.TrimLeft(raw, " \t\r\n")
	return len(trimmed) > 0 && trimmed[0] == '{'
}
