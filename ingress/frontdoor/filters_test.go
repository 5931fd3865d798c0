package frontdoor_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/ingress/internal/gatewaytest"
)

// LiteLLM's documented example, allowed_tools ["demo2-echo",
// "demo2-whoami", "fail"] with disallowed_tools ["demo2-fail"]: echo and
// whoami are listed and run, fail is neither, on REST and on /mcp.
func TestFilters_LiteLLMExample(t *testing.T) {
	g := gatewaytest.Start(t, gatewaytest.WithConfig(addDemo2))
	master := call{key: gatewaytest.MasterKey, server: "demo2"}

	r := gatewaytest.Do(t, http.MethodGet, g.URL+"/mcp-rest/tools/list?server_id=demo2", headers(master, nil), "")
	var rest struct {
		Tools []struct {
			Name string `json:"name"`
		} `json:"tools"`
	}
	if r.Status != http.StatusOK || json.Unmarshal(r.Body, &rest) != nil {
		t.Fatalf("REST list: %d %s", r.Status, r.Body)
	}
	var restNames []string
	for _, tool := range rest.Tools {
		restNames = append(restNames, tool.Name)
	}
	slices.Sort(restNames)
	if !slices.Equal(restNames, []string{"echo", "whoami"}) {
		t.Errorf("REST lists %v, want [echo whoami]", restNames)
	}

	code, resp := rpc(t, g, "/mcp", master, "tools/list", map[string]any{})
	if code != "" || resp.Error != nil {
		t.Fatalf("/mcp tools/list: %s %+v", code, resp)
	}
	var mcp struct {
		Tools []struct {
			Name string `json:"name"`
		} `json:"tools"`
	}
	if err := json.Unmarshal(resp.Result, &mcp); err != nil {
		t.Fatal(err)
	}
	var demo2 []string
	for _, tool := range mcp.Tools {
		if strings.HasPrefix(tool.Name, "demo2-") {
			demo2 = append(demo2, tool.Name)
		}
	}
	slices.Sort(demo2)
	if !slices.Equal(demo2, []string{"demo2-echo", "demo2-whoami"}) {
		t.Errorf("/mcp lists %v of demo2, want [demo2-echo demo2-whoami]", demo2)
	}

	for _, tc := range []struct {
		tool, args, want string
	}{{"echo", `{"text":"hi"}`, "ok"}, {"whoami", `{}`, "ok"}, {"fail", `{}`, "forbidden"}} {
		c := master
		c.tool, c.args = tc.tool, tc.args
		if got := restCall(t, g, "/mcp/tools/call", c, `{"name":"demo2-`+tc.tool+`","arguments":`+tc.args+`}`, nil); got.code != tc.want {
			t.Errorf("REST %s: %+v, want %s", tc.tool, got, tc.want)
		}
		if got := rpcCall(t, g, "/mcp", c, "demo2-"+tc.tool, false); got.code != tc.want {
			t.Errorf("/mcp %s: %+v, want %s", tc.tool, got, tc.want)
		}
	}
}

// A call with an argument allowed_params leaves out is refused at the
// front door: nothing crosses NATS, and the answer names the argument and
// lists the allowed ones.
func TestFilters_ForbiddenParamPublishesNothing(t *testing.T) {
	g := gatewaytest.Start(t, gatewaytest.WithConfig(func(c *config.File) {
		addDemo2(c)
		c.Worker.Servers = []string{"demo2"}
	}))
	g.RecordBus(t)
	c := call{key: gatewaytest.MasterKey, server: "demo2", tool: "echo", args: `{"text":"hi","extra":1}`}

	r := gatewaytest.Do(t, http.MethodPost, g.URL+"/mcp/tools/call", headers(c, nil), `{"name":"demo2-echo","arguments":{"text":"hi","extra":1}}`)
	if r.Status != http.StatusForbidden || r.ErrorCode(t) != "forbidden_param" {
		t.Fatalf("REST: %d %s", r.Status, r.Body)
	}
	var body struct {
		Error struct {
			Message   string   `json:"message"`
			Available []string `json:"available"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(body.Error.Available, []string{"text"}) || !strings.Contains(body.Error.Message, `"extra"`) {
		t.Errorf("the error does not name the argument and list the allowed ones: %s", r.Body)
	}
	for _, path := range []string{"/v1/calls", "/mcp-rest/tools/call"} {
		got := restCall(t, g, path, c, `{"name":"echo","server_id":"demo2","arguments":{"text":"hi","extra":1}}`, map[string]string{"Prefer": "respond-async"})
		if got.code != "forbidden_param" {
			t.Errorf("%s: %+v", path, got)
		}
	}
	for _, door := range []struct{ path, name string }{{"/mcp", "demo2-echo"}, {"/demo2/mcp", "echo"}} {
		for _, task := range []bool{false, true} {
			if got := rpcCall(t, g, door.path, c, door.name, task); got.code != "forbidden_param" {
				t.Errorf("%s (task %v): %+v", door.path, task, got)
			}
		}
	}
	g.Bus.Flush(t)
	g.Inboxes.Flush(t)
	if n := g.Bus.Count() + g.Inboxes.Count(); n != 0 {
		t.Fatalf("%d messages crossed NATS for refused calls", n)
	}

	// The recorder sees an allowed call: the check above is not vacuous.
	c.args = `{"text":"hi"}`
	if got := rpcCall(t, g, "/mcp", c, "demo2-echo", false); got.code != "ok" || got.text != "hi" {
		t.Fatalf("allowed call: %+v", got)
	}
	g.Bus.Flush(t)
	if g.Bus.Count() == 0 {
		t.Fatal("the bus recorder saw nothing of an allowed call")
	}
}
