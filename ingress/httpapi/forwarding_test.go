package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
)

// forwarding is a caller of the master key who forwards headers to server
// by every LiteLLM form: a generic Authorization, the legacy x-mcp-auth,
// x-mcp-<server>-<header> (x-api-key, x-trace) and a plain X-Tenant (which
// servers with extra_headers: [X-Tenant] receive).
func forwarding(server string) map[string]string {
	return map[string]string{
		"x-litellm-key":                  masterKey,
		"Authorization":                  credCaller,
		"x-mcp-auth":                     fwdLegacy,
		"x-mcp-" + server + "-x-api-key": fwdAPIKey,
		"x-mcp-" + server + "-x-trace":   fwdTrace,
		"X-Tenant":                       fwdTenant,
		"X-Not-Forwarded":                "nobody-gets-this",
		"x-mcp-fwd_ent-authorization":    "Bearer only-for-fwd-ent",
	}
}

// Through the whole gateway, each real MCP server received exactly the
// headers its configuration and the audience rule give it, on every request
// (initialize, calls).
func TestCredentials_ForwardedHeaders(t *testing.T) {
	cg := startCredGateway(t)
	for _, tc := range []struct {
		server string
		want   map[string]string // header -> value ("" means absent)
	}{
		// Passthrough with extra_headers: x-mcp-auth (the legacy header)
		// wins over Authorization; x-mcp-fwd-x-api-key goes as X-Api-Key.
		{"fwd", map[string]string{"Authorization": fwdLegacy, "X-Api-Key": fwdAPIKey, "X-Trace": fwdTrace, "X-Tenant": fwdTenant}},
		// x-mcp-fwd_ent-authorization is fwd_ent's alone, and wins; no
		// extra_headers here, so no X-Tenant.
		{"fwd_ent", map[string]string{"Authorization": "Bearer only-for-fwd-ent", "X-Api-Key": fwdAPIKey, "X-Trace": fwdTrace, "X-Tenant": ""}},
		// A server with its own credential: never the caller's
		// Authorization (nor x-mcp-auth), and x-mcp-svc_fwd-x-api-key does
		// not override its own X-API-Key; other forwarded headers go.
		{"svc_fwd", map[string]string{"Authorization": "", "X-Api-Key": svcAPIKey, "X-Trace": fwdTrace, "X-Tenant": fwdTenant}},
	} {
		t.Run(tc.server, func(t *testing.T) {
			resp := cg.do(t, http.MethodPost, "/mcp-rest/tools/call", forwarding(tc.server),
				`{"name":"echo","server_id":"`+tc.server+`","arguments":{"text":"hi"}}`)
			if resp.Status != http.StatusOK || resp.Text(t) != "hi" {
				t.Fatalf("%d %s", resp.Status, resp.Body)
			}
			reqs := cg.demos[tc.server].Recorder.Requests()
			if len(reqs) < 2 {
				t.Fatalf("%d requests recorded", len(reqs))
			}
			for _, h := range reqs {
				for name, want := range tc.want {
					if got := h.Get(name); got != want {
						t.Errorf("%s %q, want %q", name, got, want)
					}
				}
				for name, values := range h {
					v := strings.Join(values, " ")
					switch {
					case strings.HasPrefix(strings.ToLower(name), "x-mcp-"), strings.EqualFold(name, "x-litellm-key"):
						t.Errorf("%s reached the server", name)
					case strings.Contains(v, "nobody-gets-this"):
						t.Errorf("a header that no configuration forwards reached the server in %s", name)
					case tc.server != "fwd_ent" && strings.Contains(v, "only-for-fwd-ent"):
						t.Errorf("another server's credential reached %s in %s", tc.server, name)
					case strings.Contains(v, "c0ffee"):
						// x-mcp-auth or a per-server header replaced it on
						// the passthrough servers; svc_fwd never takes it.
						t.Errorf("the caller's Authorization reached %s in %s", tc.server, name)
					}
				}
			}
		})
	}
}

// A stdio server whose env names ${X-Tenant} runs one process per caller's
// value: two users get two processes, each with its own value; the same
// user again gets the same one.
func TestCredentials_StdioHeaderPlaceholders(t *testing.T) {
	cg := startCredGateway(t)
	whoami := func(tenant string) string {
		h := map[string]string{"x-litellm-key": masterKey, "X-Tenant": tenant}
		resp := cg.do(t, http.MethodPost, "/mcp-rest/tools/call", h, `{"name":"whoami","server_id":"tenant_local","arguments":{}}`)
		if resp.Status != http.StatusOK {
			t.Fatalf("%d %s", resp.Status, resp.Body)
		}
		return resp.Text(t)
	}
	for _, tenant := range []string{"tenant-one", "tenant-two", "tenant-one"} {
		if got := whoami(tenant); got != "tenant="+tenant {
			t.Errorf("user of %s: the process has %q", tenant, got)
		}
	}
	// A per-server header wins over the plain one.
	h := map[string]string{"x-litellm-key": masterKey, "X-Tenant": "plain", "x-mcp-tenant_local-x-tenant": "per-server"}
	resp := cg.do(t, http.MethodPost, "/mcp-rest/tools/call", h, `{"name":"whoami","server_id":"tenant_local","arguments":{}}`)
	if resp.Status != http.StatusOK || resp.Text(t) != "tenant=per-server" {
		t.Errorf("%d %s", resp.Status, resp.Body)
	}
}
