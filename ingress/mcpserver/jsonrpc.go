package mcpserver

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"

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
	scan    *contracts.JSONScan
	params  int
	scanned contracts.JSONScan // what scan points to
}

// messageWant are the members of a client message kept raw: the params
// and, in them, a tool call's arguments, which may be large.
var messageWant = contracts.NewJSONWant("params", "params.arguments")

// parseMessage decodes one JSON-RPC message as json.Unmarshal would, in one
// pass over the body (contracts.ScanJSON): the members other than the
// params are then read from the valid text (readTop), or, for anything
// readTop leaves to it, decoded by encoding/json without the params, which
// stay a sub-slice of body, scanned once.
func parseMessage(body []byte) (*message, error) {
	msg := &message{params: -1}
	scan, err := contracts.ScanJSON(body, messageWant)
	if err != nil {
		return nil, err
	}
	if scan.Aliased {
		// A key that encoding/json may take for "params" (other case,
		// escapes): it decides, on the whole body (rare).
		if err := json.Unmarshal(body, msg); err != nil {
			return nil, err
		}
		return msg, nil
	}
	if !msg.readTop(body, scan.Members) {
		*msg = message{params: -1}
		if err := json.Unmarshal(scan.Cut(-1), msg); err != nil {
			return nil, err
		}
	}
	msg.Params = nil
	if i := scan.Last(-1, "params"); i >= 0 {
		msg.scanned = scan
		msg.scan, msg.params, msg.Params = &msg.scanned, i, scan.Members[i].Value
	}
	return msg, nil
}

// readTop reads the members of the top-level object of data - valid JSON
// whose scan (members, for messageWant) was not Aliased, so that every key
// of that object is plain ASCII without escapes - into m, as encoding/json
// would, the params skipped by their scanned span. It reports false, m
// partly filled, when the text holds what it leaves to encoding/json: no
// object, a key that encoding/json matches to a field although spelled
// otherwise (other letter case), a field repeated, a jsonrpc or method that
// is not a string without escapes in valid UTF-8.
func (m *message) readTop(data []byte, members []contracts.JSONMember) bool {
	var seen uint8
	ok := true
	scanned := func(start int) int { return scannedEnd(members, -1, start, 0) }
	isObject := contracts.EachJSONMember(data, scanned, func(key, v []byte) bool {
		var bit uint8
		switch string(key) {
		case "jsonrpc":
			m.JSONRPC, ok = plainString(v)
			bit = 1
		case "id":
			m.ID, bit = v, 2
		case "method":
			m.Method, ok = plainString(v)
			bit = 4
		case "result":
			m.Result, bit = v, 8
		case "error":
			m.Error, bit = v, 16
		case "params":
		default:
			ok = !foldsTo(key, "jsonrpc", "id", "method", "params", "result", "error")
		}
		if seen&bit != 0 {
			ok = false
		}
		seen |= bit
		return ok
	})
	return isObject && ok
}

// scannedEnd is the end, in the text of the object the scan's member
// parent holds (base: where that text starts), of the value of a member of
// it that starts at i, or -1 when the scan did not report it.
func scannedEnd(members []contracts.JSONMember, parent, i, base int) int {
	for k := range members {
		if m := &members[k]; m.Parent == parent && m.Start-base == i {
			return m.End - base
		}
	}
	return -1
}

// foldsTo reports whether key, plain ASCII, is one of names in other letter
// case (encoding/json matches a struct field's name so), not spelled as it.
func foldsTo(key []byte, names ...string) bool {
	for _, name := range names {
		if len(key) == len(name) && string(key) != name && contracts.ASCIIEqualFold(key, name) {
			return true
		}
	}
	return false
}

// plainString is raw, one valid JSON value, as a Go string when it is a
// string without escapes in valid UTF-8 (encoding/json decodes it to its
// bytes); ok is false for every other value, which encoding/json is left
// to decode. Common values are constants, not allocated.
func plainString(raw []byte) (string, bool) {
	if raw[0] != '"' {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') >= 0 || !utf8.Valid(inner) {
		return "", false
	}
	switch string(inner) {
	case "2.0":
		return "2.0", true
	case "tools/call":
		return "tools/call", true
	case "tools/list":
		return "tools/list", true
	}
	return string(inner), true
}

// toolCallParams are m's params as callParams, decoded as asParams does
// (absent means {}), with the arguments as scanned: scanned is what the
// scan found in them (nil when the arguments are absent or the message was
// decoded by encoding/json whole). A params object of the usual shape is
// read from the scanned text (callParams.read); anything else is left to
// encoding/json (paramsWithout).
func (m *message) toolCallParams() (p callParams, scanned *contracts.JSONMember, e *rpcError) {
	if m.scan != nil {
		pm := &m.scan.Members[m.params]
		if pm.Value[0] == '{' && p.read(pm.Value, pm.Start, m.scan.Members, m.params) {
			if i := m.scan.Last(m.params, "params.arguments"); i >= 0 {
				scanned = &m.scan.Members[i]
			}
			return p, scanned, nil
		}
	}
	var q callParams // apart from p, which thus stays on the stack
	if scanned, e = m.paramsWithout(&q); e != nil {
		return callParams{}, nil, e
	}
	if scanned != nil {
		q.Arguments = scanned.Value
	}
	return q, scanned, nil
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
// requires (MCP forbids null). A plain string or a short integer (plainID)
// is one; every other id is decoded with encoding/json.
func validID(raw json.RawMessage) bool {
	if _, _, ok := plainID(raw); ok {
		return true
	}
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

// appendIDKey appends a canonical form of a JSON-RPC id to dst, equal for
// the same id however it was spelled ("1" and 1 differ; 1 and 1.0 do not):
// "s:" and a string's value, "n:" and a number's shortest float64 form,
// nothing for any other text.
func appendIDKey(dst []byte, raw json.RawMessage) []byte {
	if s, n, ok := plainID(raw); ok {
		if s != nil {
			return append(append(dst, "s:"...), s...)
		}
		return strconv.AppendFloat(append(dst, "n:"...), float64(n), 'g', -1, 64)
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return dst
	}
	switch id := v.(type) {
	case string:
		return append(append(dst, "s:"...), id...)
	case float64:
		return strconv.AppendFloat(append(dst, "n:"...), id, 'g', -1, 64)
	}
	return dst
}

// plainID reads the commonest ids without encoding/json: a JSON string
// without escapes or control characters, in valid UTF-8 (s, its contents,
// non-nil), or an integer of 1 to 15 digits, without a leading zero, other
// than -0 (n, which a float64 holds exactly). ok is false for every other
// text, valid or not.
func plainID(raw []byte) (s []byte, n int64, ok bool) {
	if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' {
		inner := raw[1 : len(raw)-1]
		for _, c := range inner {
			if c < 0x20 || c == '"' || c == '\\' {
				return nil, 0, false
			}
		}
		return inner, 0, utf8.Valid(inner)
	}
	digits := raw
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	if len(digits) == 0 || len(digits) > 15 || digits[0] == '0' && len(raw) > 1 {
		return nil, 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return nil, 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if raw[0] == '-' {
		n = -n
	}
	return nil, n, true
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
	return head, result, closeBrace
}

// closeBrace ends a response (responseParts); read-only.
var closeBrace = []byte{'}'}

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
