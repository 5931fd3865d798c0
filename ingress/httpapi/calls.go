package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

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
	if data, ok := c.Get(bodyKey); ok {
		return data.([]byte), nil
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(c.Request.Body); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, contracts.NewError(contracts.CodeRequestTooLarge, "the body is larger than %d bytes", tooLarge.Limit)
		}
		return nil, contracts.NewError(contracts.CodeInvalidRequest, "reading the body failed")
	}
	return buf.Bytes(), nil
}

// decodeCallBody validates the body field by field, naming the field at
// fault. The body is scanned once: contracts.ScanJSON validates it, checks
// the numbers of its arguments and finds them; encoding/json decodes the
// rest (small) as a map of raw fields, as it would decode the whole body.
func decodeCallBody(data []byte) (*callBody, *contracts.Error) {
	notObject := func() *contracts.Error {
		return contracts.NewError(contracts.CodeInvalidRequest, "the body must be a JSON object")
	}
	scan, err := contracts.ScanJSON(data, callBodyWant)
	if err != nil {
		return nil, notObject()
	}
	var fields map[string]json.RawMessage
	var b callBody
	if scan.Aliased {
		// A key written with escapes or non-ASCII bytes may be another
		// spelling of "arguments": encoding/json decides (rare; the
		// numbers are then checked by the front door's own pass).
		if err := json.Unmarshal(data, &fields); err != nil || fields == nil {
			return nil, notObject()
		}
	} else {
		if err := json.Unmarshal(scan.Cut(-1), &fields); err != nil || fields == nil {
			return nil, notObject()
		}
		delete(fields, "arguments")
		if i := scan.Last(-1, "arguments"); i >= 0 {
			b.Scanned = &scan.Members[i]
			fields["arguments"] = b.Scanned.Value
		}
	}
	return callBodyFrom(fields, &b)
}

// callBodyFrom fills b from the body's top-level members (the arguments'
// value as scanned, when b.Scanned is set): the checks of every field.
func callBodyFrom(fields map[string]json.RawMessage, b *callBody) (*callBody, *contracts.Error) {
	raw, ok := fields["name"]
	if !ok {
		return nil, contracts.NewError(contracts.CodeInvalidRequest, "field name is required")
	}
	if json.Unmarshal(raw, &b.Name) != nil {
		return nil, contracts.NewError(contracts.CodeInvalidRequest, "field name must be a string")
	}
	if b.Name == "" || len(b.Name) > maxToolNameLen {
		return nil, contracts.NewError(contracts.CodeInvalidRequest, "field name must be 1 to %d characters", maxToolNameLen)
	}
	switch raw := bytes.TrimSpace(fields["arguments"]); {
	case len(raw) == 0 || string(raw) == "null":
		b.Arguments, b.Scanned = json.RawMessage("{}"), nil
	case raw[0] == '{':
		b.Arguments = raw
	default:
		return nil, contracts.NewError(contracts.CodeInvalidRequest, "field arguments must be an object")
	}
	for _, name := range []string{"server_id", "server_name"} {
		raw, ok := fields[name]
		if !ok || string(raw) == "null" {
			continue
		}
		if json.Unmarshal(raw, &b.Server) != nil {
			return nil, contracts.NewError(contracts.CodeInvalidRequest, "field %s must be a string", name)
		}
		break
	}
	if raw, ok := fields["timeout_seconds"]; ok && string(raw) != "null" {
		var secs float64
		if json.Unmarshal(raw, &secs) != nil || secs <= 0 {
			return nil, contracts.NewError(contracts.CodeInvalidRequest, "field timeout_seconds must be a positive number")
		}
		b.Timeout = time.Duration(secs * float64(time.Second))
	}
	return b, nil
}

// callPlan is a validated, resolved call, ready to run now or as a job.
type callPlan struct {
	call *frontdoor.Call
	args json.RawMessage
}

// prepareCall reads, validates and resolves a call (frontdoor.Policy); on
// failure it has written the error response and returns nil.
func (a *API) prepareCall(c *gin.Context) *callPlan {
	data, err := readBody(c)
	if err != nil {
		abortWithError(c, err)
		return nil
	}
	body, err := decodeCallBody(data)
	if err != nil {
		abortWithError(c, err)
		return nil
	}
	call, err := a.policy.ResolveCall(c.Request.Context(), caller(c), frontdoor.CallInput{
		Server: body.Server, Name: body.Name, Naming: frontdoor.PrefixedOrBare, Timeout: body.Timeout,
		Arguments: body.Arguments, Scanned: body.Scanned,
	})
	if err != nil {
		abortWithError(c, err)
		return nil
	}
	frontdoor.Of(c).Record(call)
	return &callPlan{call: call, args: body.Arguments}
}

// callTool serves POST /mcp/tools/call and /mcp-rest/tools/call: a
// synchronous call, or a job with "Prefer: respond-async".
func (a *API) callTool(c *gin.Context) {
	plan := a.prepareCall(c)
	if plan == nil {
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
	c.Data(http.StatusOK, "application/json; charset=utf-8", result)
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
