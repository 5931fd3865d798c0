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
	Server    string
	Timeout   time.Duration
}

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

// decodeCallBody validates the body field by field, naming the field at fault.
func decodeCallBody(data []byte) (*callBody, *contracts.Error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil || fields == nil {
		return nil, contracts.NewError(contracts.CodeInvalidRequest, "the body must be a JSON object")
	}
	var b callBody
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
		b.Arguments = json.RawMessage("{}")
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
	return &b, nil
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
		Arguments: body.Arguments,
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
