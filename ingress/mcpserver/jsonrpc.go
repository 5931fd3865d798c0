package mcpserver

import (
	"bytes"
	"encoding/json"
	"strconv"

	"github.com/toolbus/toolbus/contracts"
)

// JSON-RPC 2.0 and MCP error codes.
const (
	codeParseError     = -32700
	codeInvalidRequest = -32600
	codeMethodNotFound = -32601
	codeInvalidParams  = -32602
	codeInternalError  = -32603
	// codeResourceNotFound is MCP's code for resources/read of a missing resource.
	codeResourceNotFound = -32002
)

// message is any JSON-RPC 2.0 message: a request (method and id), a
// notification (method, no id) or a response (result or error, and id).
type message struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id,omitempty"`
	Method  string          `json:"method,omitempty"`
	Params  json.RawMessage `json:"params,omitempty"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   json.RawMessage `json:"error,omitempty"`

	// scan is the one pass over the message (parseMessage), nil when
	// encoding/json decoded it whole; params is its member Params is.
	scan   *contracts.JSONScan
	params int
}

// messageWant are the members of a client message kept raw: the params
// and, in them, a tool call's arguments, which may be large.
var messageWant = contracts.NewJSONWant("params", "params.arguments")

// parseMessage decodes one JSON-RPC message as json.Unmarshal would, in one
// pass over the body (contracts.ScanJSON): encoding/json decodes only what
// is left without the params, which stay a sub-slice of body, scanned once.
func parseMessage(body []byte) (*message, error) {
	scan, err := contracts.ScanJSON(body, messageWant)
	if err != nil {
		return nil, err
	}
	msg := &message{params: -1}
	if scan.Aliased {
		// A key that encoding/json may take for "params" (other case,
		// escapes): it decides, on the whole body (rare).
		if err := json.Unmarshal(body, msg); err != nil {
			return nil, err
		}
		return msg, nil
	}
	if err := json.Unmarshal(scan.Cut(-1), msg); err != nil {
		return nil, err
	}
	msg.Params = nil
	if i := scan.Last(-1, "params"); i >= 0 {
		msg.scan, msg.params, msg.Params = &scan, i, scan.Members[i].Value
	}
	return msg, nil
}

// paramsWithout decodes m's params (absent means {}) into v, as asParams
// does, except that the member arguments, which v must take as a
// json.RawMessage, is returned raw, with what the scan found in it (nil
// without a scan: v then holds arguments as encoding/json decoded them).
func (m *message) paramsWithout(v any) (*contracts.JSONMember, *rpcError) {
	if m.scan == nil {
		return nil, asParams(m.Params, v)
	}
	if e := asParams(m.scan.Cut(m.params), v); e != nil {
		return nil, e
	}
	if i := m.scan.Last(m.params, "params.arguments"); i >= 0 {
		return &m.scan.Members[i], nil
	}
	return nil, nil
}

func (m *message) hasID() bool {
	id := bytes.TrimSpace(m.ID)
	return len(id) > 0 && string(id) != "null"
}

func (m *message) isRequest() bool      { return m.Method != "" && m.hasID() }
func (m *message) isNotification() bool { return m.Method != "" && !m.hasID() }
func (m *message) isResponse() bool {
	return m.Method == "" && m.hasID() && (len(m.Result) > 0 || len(m.Error) > 0)
}

// validID reports whether an id is a JSON string or number, as JSON-RPC
// requires (MCP forbids null).
func validID(raw json.RawMessage) bool {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return false
	}
	switch v.(type) {
	case string, float64:
		return true
	}
	return false
}

// idKey is a canonical form of a JSON-RPC id, equal for the same id however
// it was spelled ("1" and 1 differ; 1 and 1.0 do not).
func idKey(raw json.RawMessage) string {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return ""
	}
	switch id := v.(type) {
	case string:
		return "s:" + id
	case float64:
		return "n:" + strconv.FormatFloat(id, 'g', -1, 64)
	}
	return ""
}

// rpcError is a JSON-RPC error object. Data carries toolbus's error (code,
// retryable, ...) when the error came from the gateway or a worker.
type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    any    `json:"data,omitempty"`
}

func newRPCError(code int, msg string) *rpcError { return &rpcError{Code: code, Message: msg} }

// response is a JSON-RPC response.
type response struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *rpcError       `json:"error,omitempty"`
}

// notification is a JSON-RPC notification the gateway sends.
type notification struct {
	JSONRPC string `json:"jsonrpc"`
	Method  string `json:"method"`
	Params  any    `json:"params,omitempty"`
}

// encodeResponse is the response to the request id: result, or e
// (responseParts, joined).
func encodeResponse(id json.RawMessage, result json.RawMessage, e *rpcError) []byte {
	head, body, tail := responseParts(id, result, e)
	if body == nil {
		return head
	}
	data := make([]byte, 0, len(head)+len(body)+len(tail))
	return append(append(append(data, head...), body...), tail...)
}

// responseParts is the response to the request id - result, or e - as
// three pieces to send one after the other (body and tail nil for an
// error). The result is spliced in as it is, neither copied nor encoded
// again: it is valid JSON, made by the gateway's encoding/json or by a
// worker's, which decoded the upstream's answer with encoding/json (it may
// hold whitespace; see writeEvent).
func responseParts(id json.RawMessage, result json.RawMessage, e *rpcError) (head, body, tail []byte) {
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	if e != nil {
		data, _ := json.Marshal(response{JSONRPC: "2.0", ID: id, Error: e})
		return data, nil, nil
	}
	if len(result) == 0 {
		result = json.RawMessage("{}")
	}
	const start, mid = `{"jsonrpc":"2.0","id":`, `,"result":`
	head = make([]byte, 0, len(start)+len(id)+len(mid))
	head = append(append(append(head, start...), id...), mid...)
	return head, result, []byte{'}'}
}

func encodeNotification(method string, params any) []byte {
	data, _ := json.Marshal(notification{JSONRPC: "2.0", Method: method, Params: params})
	return data
}

// wireError is the JSON-RPC error for a toolbus error: protocol errors
// (invalid or unknown names) are invalid params, a missing resource is
// MCP's resource-not-found, everything else an internal error. The toolbus
// error itself is the data, so clients still see its stable code.
func wireError(e *contracts.Error, method string) *rpcError {
	code := codeInternalError
	switch e.Code {
	case contracts.CodeInvalidRequest, contracts.CodeUnknownTool, contracts.CodeUnknownServer,
		contracts.CodeAmbiguousTool, contracts.CodeForbidden, contracts.CodeForbiddenParam:
		code = codeInvalidParams
	case contracts.CodeRequestTooLarge:
		code = codeInvalidRequest
	case contracts.CodeNotFound:
		switch method {
		case "resources/read":
			code = codeResourceNotFound
		case "resources/list", "resources/templates/list", "prompts/list", "completion/complete", "ping":
			code = codeMethodNotFound // the upstream does not support it
		default:
			code = codeInvalidParams // a task, a prompt
		}
	}
	return &rpcError{Code: code, Message: e.Message, Data: e}
}

// asParams decodes params (absent means {}) into v.
func asParams(params json.RawMessage, v any) *rpcError {
	p := bytes.TrimSpace(params)
	if len(p) == 0 || string(p) == "null" {
		p = []byte("{}")
	}
	if p[0] != '{' || json.Unmarshal(p, v) != nil {
		return newRPCError(codeInvalidParams, "params must be an object of the method's shape")
	}
	return nil
}
