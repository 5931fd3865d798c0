package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/ingress/frontdoor"
)

const maxToolNameLen = 256

// callBody is the body of POST /mcp/tools/call and /mcp-rest/tools/call:
// the seed's {"name", "arguments"}, LiteLLM's optional server_id (or
// server_name), and toolbus's optional timeout_seconds. Other fields are
// ignored, as LiteLLM clients add their own.
type callBody struct {
	Name      string
	Arguments json.RawMessage
	// Scanned is the body's member Arguments is (frontdoor.CallInput).
	Scanned *contracts.JSONMember
	Server  string
	Timeout time.Duration
}

// callBodyWant is the member of a call body kept raw: the arguments, which
// may be large, are scanned once (contracts.ScanJSON) and not decoded.
var callBodyWant = contracts.NewJSONWant("arguments")

// readBody returns the body readBodyFirst read, or reads the (size-limited)
// body, mapping the limit to 413.
func readBody(c *gin.Context) ([]byte, *contracts.Error) {
	if st := stateOf(c); st.bodyRead {
		return st.body.data, nil
	}
	data, err := readAll(c.Request.Body, c.Request.ContentLength)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, contracts.NewError(contracts.CodeRequestTooLarge, "the body is larger than %d bytes", tooLarge.Limit)
		}
		return nil, contracts.NewError(contracts.CodeInvalidRequest, "reading the body failed")
	}
	return data, nil
}

// decodeCallBody validates the body field by field, naming the field at
// fault. The body is scanned once: contracts.ScanJSON validates it, checks
// the numbers of its arguments and finds them; the other top-level members
// are then read from the valid text (topMembers), the arguments skipped by
// their scanned span. It answers every body as decoding it with
// encoding/json into a map of raw members would (the oracle in
// decode_test.go).
func decodeCallBody(data []byte) (callBody, *contracts.Error) {
	scan, err := contracts.ScanJSON(data, callBodyWant)
	if err != nil {
		return callBody{}, notObject()
	}
	var f callFields
	var b callBody
	if scan.Aliased {
		// A key written with escapes, non-ASCII bytes or in other letter
		// case may be another spelling of a member (encoding/json
		// decides, as it always did; rare): its numbers are then checked
		// by the front door's own pass.
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(data, &fields); err != nil || fields == nil {
			return callBody{}, notObject()
		}
		f = callFields{name: fields["name"], arguments: fields["arguments"], serverID: fields["server_id"],
			serverName: fields["server_name"], timeout: fields["timeout_seconds"]}
	} else {
		if !topMembers(data, scan.Members, &f) {
			return callBody{}, notObject()
		}
		if i := scan.Last(-1, "arguments"); i >= 0 {
			b.Scanned = &scan.Members[i]
		}
	}
	if err := b.fill(&f); err != nil {
		return callBody{}, err
	}
	return b, nil
}

func notObject() *contracts.Error {
	return contracts.NewError(contracts.CodeInvalidRequest, "the body must be a JSON object")
}

// callFields are the raw values (as written, without the whitespace around
// them) of the top-level members of a call body that the ingress reads;
// nil: the member is absent. A repeated member is its last value, as
// encoding/json decodes it.
type callFields struct {
	name, arguments, serverID, serverName, timeout []byte
}

// fill fills b from the body's members (the arguments' value as scanned,
// when b.Scanned is set): the checks of every field, in order.
func (b *callBody) fill(f *callFields) *contracts.Error {
	if f.name == nil {
		return contracts.NewError(contracts.CodeInvalidRequest, "field name is required")
	}
	name, ok := jsonString(f.name)
	if !ok {
		return contracts.NewError(contracts.CodeInvalidRequest, "field name must be a string")
	}
	if b.Name = name; b.Name == "" || len(b.Name) > maxToolNameLen {
		return contracts.NewError(contracts.CodeInvalidRequest, "field name must be 1 to %d characters", maxToolNameLen)
	}
	switch raw := bytes.TrimSpace(f.arguments); {
	case len(raw) == 0 || string(raw) == "null":
		b.Arguments, b.Scanned = json.RawMessage("{}"), nil
	case raw[0] == '{':
		b.Arguments = raw
	default:
		return contracts.NewError(contracts.CodeInvalidRequest, "field arguments must be an object")
	}
	for _, m := range [...]struct {
		name string
		raw  []byte
	}{{"server_id", f.serverID}, {"server_name", f.serverName}} {
		if m.raw == nil || string(m.raw) == "null" {
			continue
		}
		server, ok := jsonString(m.raw)
		if !ok {
			return contracts.NewError(contracts.CodeInvalidRequest, "field %s must be a string", m.name)
		}
		b.Server = server
		break
	}
	if raw := f.timeout; raw != nil && string(raw) != "null" {
		// encoding/json decodes a JSON number into a float64 with
		// strconv.ParseFloat, and refuses every other value.
		secs, err := 0.0, error(nil)
		if c := raw[0]; c == '-' || '0' <= c && c <= '9' {
			secs, err = strconv.ParseFloat(string(raw), 64)
		} else {
			err = strconv.ErrSyntax
		}
		if err != nil || secs <= 0 {
			return contracts.NewError(contracts.CodeInvalidRequest, "field timeout_seconds must be a positive number")
		}
		b.Timeout = time.Duration(secs * float64(time.Second))
	}
	return nil
}

// jsonString decodes raw, one valid JSON value, into a string as
// encoding/json does: a string, or null (""); ok is false for any other
// value. A string without escapes and in valid UTF-8 is its bytes; others
// (escapes, invalid UTF-8, which becomes U+FFFD) go through encoding/json.
func jsonString(raw []byte) (string, bool) {
	switch raw[0] {
	case 'n':
		return "", true
	case '"':
		inner := raw[1 : len(raw)-1]
		if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
			return string(inner), true
		}
		var decoded string
		err := json.Unmarshal(raw, &decoded)
		return decoded, err == nil
	}
	return "", false
}

// topMembers reads the members of the top-level object of data - valid
// JSON whose scan (members, for callBodyWant) was not Aliased, so that
// every key of that object is plain ASCII without escapes - into f. The
// arguments are skipped by their scanned span, not read again. It reports
// false when the text is not an object.
func topMembers(data []byte, members []contracts.JSONMember, f *callFields) bool {
	scanned := func(start int) int {
		for k := range members {
			if m := &members[k]; m.Parent == -1 && m.Start == start {
				return m.End
			}
		}
		return -1
	}
	return contracts.EachJSONMember(data, scanned, func(key, v []byte) bool {
		switch string(key) {
		case "name":
			f.name = v
		case "arguments":
			f.arguments = v
		case "server_id":
			f.serverID = v
		case "server_name":
			f.serverName = v
		case "timeout_seconds":
			f.timeout = v
		}
		return true
	})
}

// callPlan is a validated, resolved call, ready to run now or as a job.
type callPlan struct {
	call *frontdoor.Call
	args json.RawMessage
}

// prepareCall reads, validates and resolves a call (frontdoor.Policy); on
// failure it has written the error response and returns false.
func (a *API) prepareCall(c *gin.Context) (callPlan, bool) {
	data, err := readBody(c)
	if err != nil {
		abortWithError(c, err)
		return callPlan{}, false
	}
	body, err := decodeCallBody(data)
	if err != nil {
		abortWithError(c, err)
		return callPlan{}, false
	}
	call, err := a.policy.ResolveCall(c.Request.Context(), caller(c), frontdoor.CallInput{
		Server: body.Server, Name: body.Name, Naming: frontdoor.PrefixedOrBare, Timeout: body.Timeout,
		Arguments: body.Arguments, Scanned: body.Scanned,
	})
	if err != nil {
		abortWithError(c, err)
		return callPlan{}, false
	}
	frontdoor.Of(c).Record(call)
	return callPlan{call: call, args: body.Arguments}, true
}

// callTool serves POST /mcp/tools/call and /mcp-rest/tools/call: a
// synchronous call, or a job with "Prefer: respond-async".
func (a *API) callTool(c *gin.Context) {
	plan, ok := a.prepareCall(c)
	if !ok {
		return
	}
	if prefersAsync(c) {
		a.submit(c, plan)
		return
	}
	result, err := a.d.Call(c.Request.Context(), frontdoor.Of(c).ID, plan.call.Dispatch(plan.args))
	if err != nil {
		abortWithError(c, err)
		return
	}
	writeJSON(c, http.StatusOK, result)
}

// jsonContentType is the Content-Type of JSON answers, shared: net/http
// copies the response's header map before writing it.
var jsonContentType = []string{"application/json; charset=utf-8"}

// writeJSON answers status with the JSON document data: c.Data without the
// allocations of Gin's renderer (which, as this, leaves a Content-Type
// already set as it is).
func writeJSON(c *gin.Context, status int, data []byte) {
	if h := c.Writer.Header(); len(h["Content-Type"]) == 0 {
		h["Content-Type"] = jsonContentType
	}
	c.Status(status)
	if _, err := c.Writer.Write(data); err != nil {
		_ = c.Error(err)
	}
}

// prefersAsync reports whether the request asks for an asynchronous answer
// (RFC 7240 Prefer: respond-async).
func prefersAsync(c *gin.Context) bool {
	for _, v := range c.Request.Header.Values("Prefer") {
		for _, pref := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(pref), "respond-async") {
				return true
			}
		}
	}
	return false
}
