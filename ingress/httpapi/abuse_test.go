package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/toolbus/toolbus/ingress/internal/gatewaytest"
)

// Arguments with a number that is valid JSON but no float64 (1e400) are
// refused at the ingress on every door - 400 invalid_request, not
// retryable - and never reach a worker.
func TestAbuse_UnencodableNumbersRefusedAtTheIngress(t *testing.T) {
	g := startGateway(t)
	h := gatewaytest.Headers(masterKey, "")
	args := `{"text":"x","n":1e400}`
	for _, path := range []string{"/mcp/tools/call", "/mcp-rest/tools/call", "/v1/calls"} {
		resp := g.do(t, http.MethodPost, path, h, `{"name":"counted-echo","arguments":`+args+`}`)
		e, _ := resp.JSON(t)["error"].(map[string]any)
		if resp.Status != http.StatusBadRequest || resp.ErrorCode(t) != "invalid_request" || e["retryable"] != false {
			t.Errorf("%s: %d %s, want 400 invalid_request, not retryable", path, resp.Status, resp.Body)
		}
	}
	h["Accept"] = "application/json, text/event-stream"
	resp := g.do(t, http.MethodPost, "/mcp", h,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"counted-echo","arguments":`+args+`}}`)
	if body := string(resp.Body); !strings.Contains(body, `"code":"invalid_request"`) || !strings.Contains(body, `"retryable":false`) {
		t.Errorf("/mcp tools/call: %d %s, want the range refusal", resp.Status, resp.Body)
	}
	if got := g.Calls.Stats(); got.Started != 0 {
		t.Errorf("the upstream got %d calls", got.Started)
	}
}
