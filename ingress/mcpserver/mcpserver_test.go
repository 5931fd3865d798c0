package mcpserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/ingress/internal/gatewaytest"
	"github.com/toolbus/toolbus/worker/demoserver"
)

func TestMCP_WrongKeyIsRefusedBeforeMCP(t *testing.T) {
	g := startGateway(t)
	initialize := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}`
	for _, tt := range []struct {
		name, path string
		h          map[string]string
	}{
		{"no key", "/mcp", map[string]string{"Authorization": userToken}},
		{"wrong key", "/mcp", headers("sk-wrong", userToken)},
		{"wrong key on a server endpoint", "/demo/mcp", headers("sk-wrong", "")},
		{"wrong key on legacy SSE", "/message?sessionId=x", headers("sk-wrong", "")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := post(t, g.URL+tt.path, tt.h, initialize)
			if resp.Status != http.StatusUnauthorized || resp.ErrorCode(t) != "unauthorized" {
				t.Fatalf("got %d %s, want 401 unauthorized", resp.Status, resp.Body)
			}
			if strings.Contains(string(resp.Body), "jsonrpc") {
				t.Fatalf("an MCP answer before the key was checked: %s", resp.Body)
			}
		})
	}
	t.Run("mcp-go client", func(t *testing.T) {
		c, err := newStreamable(g.URL+"/mcp", headers("sk-wrong", userToken))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx := contractstest.Ctx(t)
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Initialize(ctx, mcp.InitializeRequest{}); err == nil {
			t.Fatal("initialize with a wrong key succeeded")
		}
	})
	t.Run("unknown and forbidden servers", func(t *testing.T) {
		if resp := post(t, g.URL+"/nope/mcp", headers(masterKey, ""), initialize); resp.Status != http.StatusNotFound || resp.ErrorCode(t) != "unknown_server" {
			t.Fatalf("unknown server: %d %s", resp.Status, resp.Body)
		}
		if resp := post(t, g.URL+"/counted/mcp", headers(teamAKey, ""), initialize); resp.Status != http.StatusForbidden {
			t.Fatalf("forbidden server: %d %s", resp.Status, resp.Body)
		}
	})
}

func TestMCP_AggregatedListAndCall(t *testing.T) {
	g := startGateway(t)
	ctx := contractstest.Ctx(t)
	c, _ := connect(t, g.URL+"/mcp", headers(masterKey, userToken))
	if got := c.ProtocolVersion(); got != "2025-11-25" {
		t.Errorf("negotiated %q, want 2025-11-25 (after the 2026-07-28 probe)", got)
	}
	caps := c.GetServerCapabilities()
	if caps.Tools == nil || caps.Tasks == nil || caps.Tasks.Requests == nil || caps.Tasks.List == nil || caps.Tasks.Cancel == nil {
		t.Errorf("capabilities %+v: want tools and tasks (list, cancel, tools/call)", caps)
	}
	res, err := c.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]mcp.Tool{}
	for _, tool := range res.Tools {
		byName[tool.Name] = tool
	}
	for _, want := range []string{"demo-echo", "demo-whoami", "demo-slow", "counted-echo", "legacy-echo", "noauth-echo"} {
		if _, ok := byName[want]; !ok {
			t.Errorf("tool %s missing from %v", want, names(res.Tools))
		}
	}
	if _, ok := byName["noauth-fail"]; ok {
		t.Error("noauth-fail is listed although the server disallows it")
	}
	if _, ok := byName["locked-echo"]; ok {
		t.Error("locked's tools are listed although it refuses the user")
	}
	// The aggregated list reaches every server: the generic Authorization
	// went to none (frontdoor.FanOut); the call below targets demo.
	listed := g.Upstreams["demo"].Recorder.Authorizations()
	if len(listed) == 0 {
		t.Fatal("demo received nothing for the list")
	}
	for _, a := range listed {
		if a != "" {
			t.Fatalf("the aggregated tools/list sent demo Authorization %q, want none", a)
		}
	}
	g.Upstreams["demo"].Recorder.Reset()
	echo := byName["demo-echo"]
	if echo.Description != "Returns the given text." || !slices.Contains(echo.InputSchema.Required, "text") {
		t.Errorf("demo-echo lost its description or schema: %+v", echo)
	}
	if echo.Execution == nil || echo.Execution.TaskSupport != mcp.TaskSupportOptional {
		t.Errorf("demo-echo execution %+v: want taskSupport optional", echo.Execution)
	}

	who, err := callTool(ctx, c, "demo-whoami", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := text(t, who); got != userToken {
		t.Fatalf("whoami = %q, want the caller's token", got)
	}
	for _, a := range g.Upstreams["demo"].Recorder.Authorizations() {
		if a != userToken {
			t.Fatalf("the upstream saw Authorization %q, want exactly %q", a, userToken)
		}
	}
	if got := g.Upstreams["demo"].Recorder.Values("x-litellm-key"); slices.ContainsFunc(got, func(v string) bool { return v != "" }) {
		t.Fatal("the gateway key reached the upstream")
	}
	// An SSE upstream behind /mcp.
	if res, err := callTool(ctx, c, "legacy-echo", map[string]any{"text": "old"}); err != nil || text(t, res) != "old" {
		t.Fatalf("legacy-echo: %v %+v", err, res)
	}
	// auth: none servers receive no credential.
	if who, err = callTool(ctx, c, "noauth-whoami", nil); err != nil || text(t, who) != "" {
		t.Fatalf("noauth-whoami: %v %+v", err, who)
	}
	if res, err := callTool(ctx, c, "demo-fail", nil); err != nil || !res.IsError || text(t, res) != demoserver.FailText {
		t.Fatalf("a tool error must be an isError result: %v %+v", err, res)
	}
	if _, err := callTool(ctx, c, "demo-nope", nil); !errors.Is(err, mcp.ErrInvalidParams) {
		t.Fatalf("unknown tool: %v, want a JSON-RPC invalid params error", err)
	}
	if _, err := callTool(ctx, c, "nope", nil); !errors.Is(err, mcp.ErrInvalidParams) {
		t.Fatalf("unprefixed name: %v, want a JSON-RPC invalid params error", err)
	}

	t.Run("key allow-list filters list and call", func(t *testing.T) {
		c, _ := connect(t, g.URL+"/mcp", headers(teamAKey, userToken))
		res, err := c.ListTools(ctx, mcp.ListToolsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if got := names(res.Tools); !slices.Equal(got, []string{"demo-echo", "demo-whoami"}) {
			t.Fatalf("team-a sees %v", got)
		}
		if _, err := callTool(ctx, c, "demo-slow", map[string]any{"ms": 1}); !errors.Is(err, mcp.ErrInvalidParams) {
			t.Fatalf("a tool outside the allow-list: %v, want invalid params", err)
		}
		if _, err := callTool(ctx, c, "counted-echo", map[string]any{"text": "x"}); !errors.Is(err, mcp.ErrInvalidParams) {
			t.Fatalf("a server outside the allow-list: %v, want invalid params", err)
		}
	})
}

func names(tools []mcp.Tool) []string {
	var out []string
	for _, t := range tools {
		out = append(out, t.Name)
	}
	slices.Sort(out)
	return out
}

// With ingress.per_server_tool_names: bare, a server's endpoint lists the
// server's own names (the default, prefixed, is LiteLLM's form: the
// frontdoor doors table and TestLiteLLM_PerServerNames).
func TestMCP_ServerEndpoint(t *testing.T) {
	g := startGateway(t, func(c *config.File) { c.Ingress.PerServerToolNames = config.ToolNamesBare })
	ctx := contractstest.Ctx(t)
	c, _ := connect(t, g.URL+"/demo/mcp", headers(masterKey, userToken))
	caps := c.GetServerCapabilities()
	if caps.Resources == nil || caps.Prompts == nil || caps.Completions == nil {
		t.Errorf("capabilities %+v: want resources, prompts, completions", caps)
	}
	tools, err := c.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(tools.Tools); !slices.Equal(got, []string{"ask", "big", "echo", "fail", "sample", "slow", "touch", "whoami"}) {
		t.Fatalf("tools %v, want the server's own names", got)
	}
	res, err := callTool(ctx, c, "echo", map[string]any{"text": "hi"})
	if err != nil || text(t, res) != "hi" {
		t.Fatalf("echo: %v %+v", err, res)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}

	if err := demoserver.CheckSurface(ctx, c); err != nil {
		t.Fatal(err)
	}
	var missing mcp.ReadResourceRequest
	missing.Params.URI = "demo://missing"
	if _, err := c.ReadResource(ctx, missing); err == nil {
		t.Fatal("reading a missing resource succeeded")
	}
	var get mcp.GetPromptRequest
	get.Params.Name, get.Params.Arguments = "nope", map[string]string{"name": "Ada"}
	if _, err := c.GetPrompt(ctx, get); err == nil {
		t.Fatal("a missing prompt was found")
	}

	// Every relayed request carried exactly the caller's token upstream.
	for _, a := range g.Upstreams["demo"].Recorder.Authorizations() {
		if a != userToken {
			t.Fatalf("the upstream saw Authorization %q", a)
		}
	}

	t.Run("the aggregated endpoint relays no resources", func(t *testing.T) {
		c, _ := connect(t, g.URL+"/mcp", headers(masterKey, userToken))
		if _, err := c.ListResources(ctx, mcp.ListResourcesRequest{}); !errors.Is(err, mcp.ErrMethodNotFound) {
			t.Fatalf("resources/list on /mcp: %v, want method not found", err)
		}
		if err := c.Ping(ctx); err != nil {
			t.Fatalf("ping on /mcp: %v", err)
		}
	})
}

func TestMCP_ProgressAndLogs(t *testing.T) {
	g := startGateway(t)
	ctx := contractstest.Ctx(t)
	for _, endpoint := range []string{"/mcp", "/demo/mcp"} {
		t.Run(endpoint, func(t *testing.T) {
			c, n := connect(t, g.URL+endpoint, headers(masterKey, userToken))
			name := "slow"
			if endpoint == "/mcp" {
				name = "demo-slow"
			}
			var req mcp.CallToolRequest
			req.Params.Name = name
			req.Params.Arguments = map[string]any{"ms": 400}
			req.Params.Meta = &mcp.Meta{ProgressToken: "p-1"}
			res, err := c.CallTool(ctx, req)
			if err != nil || !strings.HasPrefix(text(t, res), "slept") {
				t.Fatalf("slow: %v %+v", err, res)
			}
			progress := n.of(string(mcp.MethodNotificationProgress))
			if len(progress) < 3 {
				t.Fatalf("%d progress notifications, want at least 3", len(progress))
			}
			last := -1.0
			for _, p := range progress {
				f := p.Params.AdditionalFields
				if f["progressToken"] != "p-1" || f["total"] != 4.0 {
					t.Fatalf("progress %+v: want the client's token and total 4", f)
				}
				if v := f["progress"].(float64); v <= last {
					t.Fatalf("progress not increasing: %v after %v", v, last)
				} else {
					last = v
				}
			}
			logs := n.of(string(mcp.MethodNotificationMessage))
			if len(logs) < 3 || !strings.HasPrefix(logs[0].Params.AdditionalFields["data"].(string), "slow: step") {
				t.Fatalf("log notifications %+v, want the upstream's", logs)
			}
		})
	}
}

func TestMCP_Cancellation(t *testing.T) {
	g := startGateway(t)
	ctx := contractstest.Ctx(t)

	t.Run("notifications/cancelled", func(t *testing.T) {
		c, _ := connect(t, g.URL+"/mcp", headers(masterKey, userToken))
		before := g.Calls.Stats()
		done := make(chan error, 1)
		go func() {
			_, err := c.GetTransport().SendRequest(ctx, transport.JSONRPCRequest{
				JSONRPC: mcp.JSONRPC_VERSION, ID: mcp.NewRequestId("call-7"), Method: "tools/call",
				Params: map[string]any{"name": "counted-slow", "arguments": map[string]any{"ms": 20000}},
			})
			done <- err
		}()
		contractstest.Eventually(t, "the upstream call to start", func() bool { return g.Calls.Stats().Running == 1 })
		err := c.GetTransport().SendNotification(ctx, mcp.JSONRPCNotification{
			JSONRPC: mcp.JSONRPC_VERSION,
			Notification: mcp.Notification{Method: "notifications/cancelled", Params: mcp.NotificationParams{
				AdditionalFields: map[string]any{"requestId": "call-7", "reason": "user pressed stop"},
			}},
		})
		if err != nil {
			t.Fatal(err)
		}
		contractstest.Eventually(t, "the upstream call to be cancelled", func() bool { return g.Calls.Stats().Cancelled == before.Cancelled+1 })
		select {
		case <-done: // answered, never hung
		case <-time.After(10 * time.Second):
			t.Fatal("the cancelled call's request never ended")
		}
	})

	t.Run("client goes away", func(t *testing.T) {
		c, _ := connect(t, g.URL+"/mcp", headers(masterKey, userToken))
		before := g.Calls.Stats()
		callCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			_, err := callTool(callCtx, c, "counted-slow", map[string]any{"ms": 20000})
			done <- err
		}()
		contractstest.Eventually(t, "the upstream call to start", func() bool { return g.Calls.Stats().Running == 1 })
		cancel()
		<-done
		contractstest.Eventually(t, "the upstream call to be cancelled", func() bool { return g.Calls.Stats().Cancelled == before.Cancelled+1 })
	})
}

// sendTaskCall sends a task-augmented tools/call (mcp-go v1.2.1's CallTool
// cannot parse a CreateTaskResult) and returns the task.
func sendTaskCall(t *testing.T, ctx context.Context, tr transport.Interface, name string, args map[string]any) mcp.Task {
	t.Helper()
	resp, err := tr.SendRequest(ctx, transport.JSONRPCRequest{
		JSONRPC: mcp.JSONRPC_VERSION, ID: mcp.NewRequestId(name + "-task"), Method: "tools/call",
		Params: map[string]any{"name": name, "arguments": args, "task": map[string]any{"ttl": 60000}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Error != nil {
		t.Fatalf("task call: %+v", resp.Error)
	}
	var created mcp.CreateTaskResult
	if err := json.Unmarshal(resp.Result, &created); err != nil || created.Task.TaskId == "" {
		t.Fatalf("not a CreateTaskResult (%v): %s", err, resp.Result)
	}
	return created.Task
}

func TestMCP_Tasks(t *testing.T) {
	g := startGateway(t)
	ctx := contractstest.Ctx(t)
	c, _ := connect(t, g.URL+"/mcp", headers(masterKey, userToken))

	task := sendTaskCall(t, ctx, c.GetTransport(), "demo-whoami", nil)
	if task.Status != mcp.TaskStatusWorking || task.PollInterval == nil || task.TTL == nil {
		t.Fatalf("created task %+v: want working with a poll interval and ttl", task)
	}
	// Any replica serves any task: read it through another ingress.
	other, _ := connect(t, g.newIngress(t)+"/mcp", headers(masterKey, userToken))
	got, err := other.WaitForTask(ctx, mcp.GetTaskRequest{Params: mcp.GetTaskParams{TaskId: task.TaskId}}, 50*time.Millisecond)
	if err != nil || got.Status != mcp.TaskStatusCompleted {
		t.Fatalf("tasks/get: %v %+v", err, got)
	}
	result, err := other.TaskResult(ctx, mcp.TaskResultRequest{Params: mcp.TaskResultParams{TaskId: task.TaskId}})
	if err != nil || len(result.Content) == 0 || result.Content[0].(mcp.TextContent).Text != userToken {
		t.Fatalf("tasks/result: %v %+v", err, result)
	}
	if result.Meta == nil || result.Meta.AdditionalFields["io.modelcontextprotocol/related-task"] == nil {
		t.Errorf("tasks/result has no related-task _meta: %+v", result.Meta)
	}

	// tasks/result waits for a working task.
	slow := sendTaskCall(t, ctx, c.GetTransport(), "demo-slow", map[string]any{"ms": 300})
	result, err = c.TaskResult(ctx, mcp.TaskResultRequest{Params: mcp.TaskResultParams{TaskId: slow.TaskId}})
	if err != nil || !strings.HasPrefix(result.Content[0].(mcp.TextContent).Text, "slept") {
		t.Fatalf("tasks/result of a working task: %v %+v", err, result)
	}

	// Cancel a running task: the upstream call is cancelled.
	before := g.Calls.Stats()
	long := sendTaskCall(t, ctx, c.GetTransport(), "counted-slow", map[string]any{"ms": 20000})
	contractstest.Eventually(t, "the task to start upstream", func() bool { return g.Calls.Stats().Running == 1 })
	cancelled, err := c.CancelTask(ctx, mcp.CancelTaskRequest{Params: mcp.CancelTaskParams{TaskId: long.TaskId}})
	if err != nil || cancelled.Status != mcp.TaskStatusCancelled {
		t.Fatalf("tasks/cancel: %v %+v", err, cancelled)
	}
	contractstest.Eventually(t, "the upstream call to be cancelled", func() bool { return g.Calls.Stats().Cancelled == before.Cancelled+1 })
	if _, err := c.CancelTask(ctx, mcp.CancelTaskRequest{Params: mcp.CancelTaskParams{TaskId: long.TaskId}}); !errors.Is(err, mcp.ErrInvalidParams) {
		t.Fatalf("cancelling a cancelled task: %v, want invalid params", err)
	}

	list, err := c.ListTasks(ctx, mcp.ListTasksRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, tk := range list.Tasks {
		ids = append(ids, tk.TaskId)
	}
	if !slices.Equal(ids, []string{long.TaskId, slow.TaskId, task.TaskId}) {
		t.Fatalf("tasks/list %v, want the three tasks, newest first", ids)
	}

	t.Run("tasks belong to their key and user", func(t *testing.T) {
		for name, h := range map[string]map[string]string{
			"another user":     headers(masterKey, "Bearer someone-else"),
			"no user":          headers(masterKey, ""),
			"another key":      headers(teamAKey, userToken),
			"another endpoint": nil,
		} {
			url := g.URL + "/mcp"
			if h == nil {
				h, url = headers(masterKey, userToken), g.URL+"/counted/mcp"
			}
			c, _ := connect(t, url, h)
			if _, err := c.GetTask(ctx, mcp.GetTaskRequest{Params: mcp.GetTaskParams{TaskId: task.TaskId}}); !errors.Is(err, mcp.ErrInvalidParams) {
				t.Errorf("%s: tasks/get %v, want not found (invalid params)", name, err)
			}
		}
	})
}

func TestMCP_UpstreamUnauthorizedIsHTTP401(t *testing.T) {
	g := startGateway(t)
	list := `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`
	resp := post(t, g.URL+"/locked/mcp", headers(masterKey, "Bearer bad"), list)
	if resp.Status != http.StatusUnauthorized || resp.ErrorCode(t) != "upstream_unauthorized" {
		t.Fatalf("got %d %s, want 401 upstream_unauthorized", resp.Status, resp.Body)
	}
	if www := resp.Header.Get("WWW-Authenticate"); !strings.Contains(www, "resource_metadata=") {
		t.Fatalf("WWW-Authenticate %q: want the upstream's challenge", www)
	}
	call := `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}}`
	if resp := post(t, g.URL+"/locked/mcp", headers(masterKey, "Bearer bad"), call); resp.Status != http.StatusUnauthorized {
		t.Fatalf("tools/call: %d %s, want 401", resp.Status, resp.Body)
	}
	// On /mcp one server refusing the user is a tool error, not a 401 for
	// the whole endpoint.
	ctx := contractstest.Ctx(t)
	agg, _ := connect(t, g.URL+"/mcp", headers(masterKey, "Bearer bad"))
	res, err := callTool(ctx, agg, "locked-echo", map[string]any{"text": "x"})
	if err != nil || !res.IsError || !strings.Contains(text(t, res), "upstream_unauthorized") {
		t.Fatalf("locked-echo on /mcp: %v %+v", err, res)
	}
	if res, err := callTool(ctx, agg, "demo-echo", map[string]any{"text": "fine"}); err != nil || text(t, res) != "fine" {
		t.Fatalf("demo-echo beside it: %v %+v", err, res)
	}
	// With the right token the same endpoint works.
	c, _ := connect(t, g.URL+"/locked/mcp", headers(masterKey, "Bearer good"))
	if res, err := callTool(ctx, c, "echo", map[string]any{"text": "ok"}); err != nil || text(t, res) != "ok" {
		t.Fatalf("echo with the right token: %v %+v", err, res)
	}
	// The per-server header overrides Authorization for its server only.
	c, _ = connect(t, g.URL+"/locked/mcp", map[string]string{"x-litellm-key": masterKey, "Authorization": "Bearer bad", "x-mcp-locked-authorization": "Bearer good"})
	if res, err := callTool(ctx, c, "echo", map[string]any{"text": "ok"}); err != nil || text(t, res) != "ok" {
		t.Fatalf("echo with x-mcp-locked-authorization: %v %+v", err, res)
	}
}

func TestMCP_HTTPRules(t *testing.T) {
	g := startGateway(t)
	ping := `{"jsonrpc":"2.0","id":1,"method":"ping"}`
	h := headers(masterKey, "")
	for _, tt := range []struct {
		name   string
		extra  map[string]string
		body   string
		status int
	}{
		{"ping", nil, ping, http.StatusOK},
		{"rebinding Host", map[string]string{"Host": "evil.example.com"}, ping, http.StatusForbidden},
		{"rebinding Origin", map[string]string{"Origin": "http://evil.example.com"}, ping, http.StatusForbidden},
		{"localhost Host and Origin", map[string]string{"Host": "localhost", "Origin": "http://localhost:6274"}, ping, http.StatusOK},
		{"unsupported protocol version", map[string]string{"MCP-Protocol-Version": "1999-01-01"}, ping, http.StatusBadRequest},
		{"not JSON", nil, `{nope`, http.StatusBadRequest},
		{"a batch", nil, `[` + ping + `]`, http.StatusBadRequest},
		{"too large", nil, `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"` + strings.Repeat("x", 2<<20) + `"}}`, http.StatusRequestEntityTooLarge},
		{"a notification", nil, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, http.StatusAccepted},
	} {
		t.Run(tt.name, func(t *testing.T) {
			hh := map[string]string{}
			for k, v := range h {
				hh[k] = v
			}
			for k, v := range tt.extra {
				hh[k] = v
			}
			if resp := post(t, g.URL+"/mcp", hh, tt.body); resp.Status != tt.status {
				t.Fatalf("got %d %s, want %d", resp.Status, resp.Body, tt.status)
			}
		})
	}
	t.Run("GET has no stream", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(contractstest.Ctx(t), http.MethodGet, g.URL+"/mcp", nil)
		req.Header.Set("x-litellm-key", masterKey)
		req.Header.Set("Accept", "text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("GET /mcp: %d, want 405", resp.StatusCode)
		}
	})
}

func TestMCP_LegacySSE(t *testing.T) {
	g := startGateway(t)
	ctx := contractstest.Ctx(t)
	c, n := connectSSE(t, g.URL+"/sse", headers(masterKey, userToken))
	tools, err := c.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil || !slices.Contains(names(tools.Tools), "demo-echo") {
		t.Fatalf("tools/list over SSE: %v", err)
	}
	var req mcp.CallToolRequest
	req.Params.Name, req.Params.Arguments = "demo-slow", map[string]any{"ms": 200}
	req.Params.Meta = &mcp.Meta{ProgressToken: "sse-1"}
	res, err := c.CallTool(ctx, req)
	if err != nil || !strings.HasPrefix(text(t, res), "slept") {
		t.Fatalf("tools/call over SSE: %v %+v", err, res)
	}
	if len(n.of(string(mcp.MethodNotificationProgress))) < 3 {
		t.Fatal("no progress over SSE")
	}

	t.Run("per server", func(t *testing.T) {
		c, _ := connectSSE(t, g.URL+"/demo/sse", headers(masterKey, userToken))
		res, err := callTool(ctx, c, "whoami", nil)
		if err != nil || text(t, res) != userToken {
			t.Fatalf("whoami over /demo/sse: %v %+v", err, res)
		}
	})

	t.Run("a message posted to another replica", func(t *testing.T) {
		other := g.newIngress(t)
		streamCtx, stop := context.WithCancel(ctx)
		defer stop()
		req, _ := http.NewRequestWithContext(streamCtx, http.MethodGet, g.URL+"/sse", nil)
		req.Header.Set("x-litellm-key", masterKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		events := gatewaytest.SSEData(resp.Body)
		endpoint := <-events
		if !strings.HasPrefix(endpoint, "/message?sessionId=") {
			t.Fatalf("endpoint event %q", endpoint)
		}
		call := `{"jsonrpc":"2.0","id":"x1","method":"tools/call","params":{"name":"demo-echo","arguments":{"text":"across"}}}`
		if r := post(t, other+endpoint, headers(masterKey, ""), call); r.Status != http.StatusAccepted {
			t.Fatalf("POST to the other replica: %d %s", r.Status, r.Body)
		}
		select {
		case data := <-events:
			if !strings.Contains(data, `"across"`) || !strings.Contains(data, `"x1"`) {
				t.Fatalf("stream got %s", data)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the answer never reached the stream")
		}
		// Another key cannot post into the session.
		if r := post(t, other+endpoint, headers(teamAKey, ""), call); r.Status != http.StatusNotFound {
			t.Fatalf("another key's POST: %d, want 404", r.Status)
		}
		if r := post(t, other+"/message?sessionId=nope-nope", headers(masterKey, ""), call); r.Status != http.StatusNotFound {
			t.Fatalf("unknown session: %d, want 404", r.Status)
		}
	})
}

func TestMCP_TokenNeverOnTheBus(t *testing.T) {
	g := startGateway(t)
	ctx := contractstest.Ctx(t)
	g.RecordBus(t)
	c, _ := connect(t, g.URL+"/demo/mcp", headers(masterKey, userToken))
	var req mcp.CallToolRequest
	req.Params.Name, req.Params.Arguments = "slow", map[string]any{"ms": 100}
	req.Params.Meta = &mcp.Meta{ProgressToken: 1}
	if _, err := c.CallTool(ctx, req); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListPrompts(ctx, mcp.ListPromptsRequest{}); err != nil {
		t.Fatal(err)
	}
	task := sendTaskCall(t, ctx, c.GetTransport(), "echo", map[string]any{"text": "t"})
	if _, err := c.TaskResult(ctx, mcp.TaskResultRequest{Params: mcp.TaskResultParams{TaskId: task.TaskId}}); err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"user-token-5678", masterKey} {
		g.AssertNoSecret(t, secret)
	}
}

// Server names that are also the first segment of other routes still get
// their /<server>/mcp endpoint, and the other routes still work.
func TestMCP_ServerNamesLikeOtherRoutes(t *testing.T) {
	g := startGateway(t, func(f *config.File) {
		for _, name := range []string{"mcp", "v1", "admin", "sse"} {
			f.MCPServers[name] = &config.Server{URL: "http://127.0.0.1:9/mcp"} // initialize needs no upstream
		}
	})
	ping := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}`
	for _, name := range []string{"mcp", "v1", "admin", "sse", "demo"} {
		resp := post(t, g.URL+"/"+name+"/mcp", headers(masterKey, ""), ping)
		if resp.Status != http.StatusOK || !strings.Contains(string(resp.Body), `"toolbus/`+name+`"`) {
			t.Errorf("/%s/mcp: %d %s", name, resp.Status, resp.Body)
		}
	}
	if resp := post(t, g.URL+"/mcp/tools/call", headers(masterKey, ""), `{"name":"demo-echo","arguments":{"text":"rest"}}`); resp.Status != http.StatusOK {
		t.Errorf("REST call: %d %s", resp.Status, resp.Body)
	}
}
