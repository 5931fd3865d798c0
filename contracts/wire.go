package contracts

import (
	"encoding/json"
	"unicode/utf8"
)

// Wire format v2 of the synchronous request kinds (call, list, rpc).
//
// A request's small fields - its RequestHeader and its kind's own (tool,
// events_to, client_requests, method) - travel as one line of compact JSON
// in the NATS message header HeaderRequest; its payload (a call's arguments,
// a relayed request's params) is the message body, byte for byte. A reply's
// ReplyHeader (type, request id, error) travels in HeaderReply and its
// payload (the result, the tools) is the body. Neither side re-encodes or
// re-scans a payload on the bus: the ingress hands the caller's bytes to
// NATS, the worker hands them upstream, and back. The sealed token's binding
// covers the SHA-256 of the body bytes, so an edited body does not open.
//
// The header is still a versioned JSON message (its "type" names the kind
// and version, e.g. TypeCallRequest), decoded and validated as strictly as
// a v1 message was, and bounded by MaxHeaderValue: a message whose header is
// missing, repeated, too long or not valid is unreadable.
//
// Async jobs (JobRequest) keep the v1 envelope: they sit in JetStream across
// upgrades, and their arguments are in the job record anyway.

// NATS header names of the v2 messages. NATS header keys are
// case-sensitive: these are the exact keys.
const (
	HeaderRequest = "Toolbus-Request"
	HeaderReply   = "Toolbus-Reply"
)

// MaxHeaderValue bounds a v2 message's header value. A sealed token of the
// largest size (maxSealedToken) and every bounded field fit.
const MaxHeaderValue = 64 << 10

// Wire is a v2 message as NATS carries it: the value of its header
// (HeaderRequest or HeaderReply) and its body. Body is never copied:
// decoding keeps it as the message's payload.
type Wire struct {
	Header string
	Body   []byte
}

// Bodied is a message whose payload travels as the NATS message body.
type Bodied interface {
	// Body is where the message's payload is: the call's arguments, the
	// relayed request's params, the reply's result or tools. nil for a
	// message that has no body (a ListRequest).
	Body() *json.RawMessage
}

// EncodeRequest returns r's v2 wire form: its header value (r's JSON, its
// payload excluded) and its payload as the body, unchanged.
func EncodeRequest(r Request) (Wire, error) { return encodeWire(r) }

// EncodeReply returns r's v2 wire form.
func EncodeReply(r Reply) (Wire, error) { return encodeWire(r) }

func encodeWire(m interface {
	Bodied
	Validate() error
}) (Wire, error) {
	// The codec (wirecodec.go) writes the known kinds as json.Marshal does.
	hdr, tooLong, ok := encodeHeader(m)
	if !ok {
		b, err := json.Marshal(m)
		if err != nil {
			return Wire{}, err
		}
		hdr, tooLong = string(b), len(b) > MaxHeaderValue
	}
	if tooLong {
		return Wire{}, badMessage("header longer than %d bytes", MaxHeaderValue)
	}
	var body []byte
	if p := m.Body(); p != nil {
		body = *p
	}
	return Wire{Header: hdr, Body: body}, nil
}

// DecodeRequest decodes w into r and validates it. When the header is JSON
// but not a valid message, r keeps what decoded, so that a worker can still
// answer the request id it names. The body becomes r's payload as is; a
// kind without a payload refuses a body.
func DecodeRequest(w Wire, r Request) error {
	if err := decodeWire(w, r); err != nil {
		return err
	}
	return r.Validate()
}

// DecodeReply decodes w into r and validates it.
func DecodeReply(w Wire, r Reply) error {
	if err := decodeWire(w, r); err != nil {
		return err
	}
	return r.Validate()
}

func decodeWire(w Wire, m Bodied) error {
	switch {
	case w.Header == "":
		return badMessage("no %s/%s header", HeaderRequest, HeaderReply)
	case len(w.Header) > MaxHeaderValue:
		return badMessage("header longer than %d bytes", MaxHeaderValue)
	case !utf8.ValidString(w.Header):
		return badMessage("header is not UTF-8")
	}
	// The codec (wirecodec.go) reads the form it writes and leaves anything
	// else to json.Unmarshal, with the same result.
	if !decodeHeaderFast(w.Header, m) {
		if err := json.Unmarshal([]byte(w.Header), m); err != nil {
			return badMessage("header: %v", err)
		}
	}
	p := m.Body()
	switch {
	case p != nil:
		*p = w.Body
	case len(w.Body) > 0:
		return badMessage("unexpected body")
	}
	return nil
}

// HeaderValue returns the one value of a v2 header in values (a NATS
// header's values for HeaderRequest or HeaderReply): "" when there is none
// or more than one, which decodes as unreadable.
func HeaderValue(values []string) string {
	if len(values) != 1 {
		return ""
	}
	return values[0]
}

// decodeBodied decodes w into a new message of type T and validates it.
func decodeBodied[T any, P interface {
	*T
	Bodied
	Validate() error
}](w Wire) (*T, error) {
	var v T
	if err := decodeWire(w, P(&v)); err != nil {
		return nil, err
	}
	if err := P(&v).Validate(); err != nil {
		return nil, err
	}
	return &v, nil
}
