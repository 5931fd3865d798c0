package frontdoor_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/ingress/internal/gatewaytest"
)

// The fan-out audience, on a started gateway: a request that reaches every
// server sends the caller's generic Authorization to none of them but the
// one that sets passthrough_on_fanout; x-mcp-<server>-authorization still
// reaches its server; a server that refuses is a per-server failure with
// its challenge. Requests that name a server keep sending Authorization.
func TestFanOut_GenericAuthorizationGoesToNoServer(t *testing.T) {
	g := gatewaytest.Start(t, gatewaytest.WithConfig(func(c *config.File) {
		c.Ingress.ListCacheTTL = config.Duration(time.Nanosecond)
		c.MCPServers["counted"].PassthroughOnFanout = true
	}))
	const general, forOther = "Bearer general-fanout", "Bearer only-for-other"
	h := map[string]string{
		"x-litellm-key": gatewaytest.MasterKey, "Authorization": general,
		"x-mcp-other-authorization": forOther, "Accept": "application/json",
	}
	reset := func() {
		for _, up := range g.Upstreams {
			up.Recorder.Reset()
		}
	}
	// received checks what each passthrough server received: demo and legacy
	// (two passthrough servers without the setting) no Authorization at all,
	// other only its own header's value, counted the generic one.
	received := func(t *testing.T) {
		t.Helper()
		wantOnly(t, g, "demo", "")
		wantOnly(t, g, "legacy", "")
		wantOnly(t, g, "other", forOther)
		wantOnly(t, g, "counted", general)
		for _, a := range g.Upstreams["locked"].Recorder.Authorizations() {
			if a != "" {
				t.Errorf("locked received Authorization %q on a fan-out", a)
			}
		}
	}
	// lockedFailure checks the refusing server's failure: upstream_unauthorized
	// with its WWW-Authenticate challenge.
	lockedFailure := func(t *testing.T, failures []struct {
		Server string `json:"server"`
		Error  struct {
			Code            string `json:"code"`
			WWWAuthenticate string `json:"www_authenticate"`
		} `json:"error"`
	}) {
		t.Helper()
		for _, f := range failures {
			if f.Server == "locked" {
				if f.Error.Code != "upstream_unauthorized" || f.Error.WWWAuthenticate == "" {
					t.Fatalf("locked failed with %+v, want upstream_unauthorized and its challenge", f.Error)
				}
				return
			}
		}
		t.Fatalf("locked is not among the failures %+v", failures)
	}
	type failures = []struct {
		Server string `json:"server"`
		Error  struct {
			Code            string `json:"code"`
			WWWAuthenticate string `json:"www_authenticate"`
		} `json:"error"`
	}

	t.Run("REST list without server_id", func(t *testing.T) {
		reset()
		r := gatewaytest.Do(t, http.MethodGet, g.URL+"/mcp/tools/list", h, "")
		var body struct {
			Failures failures `json:"failures"`
		}
		if r.Status != http.StatusOK || json.Unmarshal(r.Body, &body) != nil {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		received(t)
		lockedFailure(t, body.Failures)
	})
	t.Run("aggregated /mcp tools/list", func(t *testing.T) {
		reset()
		r := gatewaytest.Do(t, http.MethodPost, g.URL+"/mcp", h, `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`)
		var body struct {
			Result struct {
				Meta struct {
					Failures failures `json:"io.toolbus/failures"`
				} `json:"_meta"`
			} `json:"result"`
		}
		if r.Status != http.StatusOK || json.Unmarshal(r.Body, &body) != nil {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		received(t)
		lockedFailure(t, body.Result.Meta.Failures)
	})
	t.Run("REST bare-name lookup", func(t *testing.T) {
		reset()
		// echo is on several servers: the lookup lists every server, and
		// the answer is ambiguous, so nothing but the lists reached them.
		r := gatewaytest.Do(t, http.MethodPost, g.URL+"/mcp/tools/call", h, `{"name":"echo","arguments":{"text":"x"}}`)
		if code := r.ErrorCode(t); code != "ambiguous_tool" {
			t.Fatalf("%d %s, want ambiguous_tool", r.Status, r.Body)
		}
		received(t)
	})
	t.Run("the per-server header answers the challenge", func(t *testing.T) {
		reset()
		withLocked := map[string]string{"x-mcp-locked-authorization": "Bearer good"}
		for k, v := range h {
			withLocked[k] = v
		}
		r := gatewaytest.Do(t, http.MethodGet, g.URL+"/mcp/tools/list", withLocked, "")
		var body struct {
			Failures failures `json:"failures"`
		}
		if r.Status != http.StatusOK || json.Unmarshal(r.Body, &body) != nil {
			t.Fatalf("HTTP %d", r.Status)
		}
		for _, f := range body.Failures {
			if f.Server == "locked" {
				t.Fatalf("locked failed with %+v: its own header did not reach it", f.Error)
			}
		}
		wantOnly(t, g, "locked", "Bearer good")
		wantOnly(t, g, "demo", "")
	})
	// Requests that name the server keep sending the generic Authorization.
	for _, target := range []struct{ name, method, path, body string }{
		{"REST list with server_id", http.MethodGet, "/mcp/tools/list?server_id=demo", ""},
		{"/demo/mcp tools/list", http.MethodPost, "/demo/mcp", `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`},
		{"prefixed tools/call on /mcp", http.MethodPost, "/mcp", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"demo-whoami","arguments":{}}}`},
		{"REST call with a prefixed name", http.MethodPost, "/mcp/tools/call", `{"name":"demo-whoami","arguments":{}}`},
	} {
		t.Run(target.name, func(t *testing.T) {
			reset()
			r := gatewaytest.Do(t, target.method, g.URL+target.path, h, target.body)
			if r.Status != http.StatusOK {
				t.Fatalf("%d %s", r.Status, r.Body)
			}
			wantOnly(t, g, "demo", general)
		})
	}
}
