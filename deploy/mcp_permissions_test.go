package deploy

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/ingress/gateway"
	"github.com/toolbus/toolbus/worker/demoserver"
	"github.com/toolbus/toolbus/worker/pool"
)

// The permissions are enough for the MCP endpoint: relayed resources,
// call events and the cancellation of a sync call, legacy SSE messages
// handed from one ingress replica to another, a client's answer to an
// upstream's request, and resource subscriptions with their updates.
func TestNATSPermissions_EnoughForMCP(t *testing.T) {
	ns := startPermissionedNATS(t)
	workerConn, workerPerms := connectAs(t, ns, "worker", "worker-pw")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	calls := &demoserver.Calls{}
	up, err := demoserver.Start(ctx, demoserver.Options{Calls: calls}, demoserver.TransportHTTP)
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close(context.Background())
	cfg := &config.File{
		MCPServers: map[string]*config.Server{"demo": {URL: up.URL}},
		Keys:       []config.Key{{Name: "k", Key: "sk-k"}},
	}
	_, key := startWorkers(ctx, t, cfg, workerConn, pool.WithoutJobs())
	log := zerolog.Nop()

	// Two ingress replicas, each with its own ingress connection.
	replica := func() (string, *permErrors) {
		nc, perms := connectAs(t, ns, "ingress", "ingress-pw")
		gw, err := gateway.Assemble(gateway.Options{Config: cfg, Conn: nc, Sealer: contracts.NewSealer(key.Public(), 0), Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(gw.Handler)
		t.Cleanup(func() { gw.CloseStreams(); srv.Close(); gw.Close() })
		return srv.URL, perms
	}
	a, aPerms := replica()
	b, bPerms := replica()
	post := func(url, body string) (int, string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("x-litellm-key", "sk-k")
		req.Header.Set("Authorization", "Bearer permitted")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Mcp-Session-Id", "s1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var sb strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			sb.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return resp.StatusCode, sb.String()
	}

	// A relayed resources/read.
	if status, body := post(a+"/demo/mcp", `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"`+demoserver.ResourceReadme+`"}}`); status != http.StatusOK || !strings.Contains(body, "toolbus demo server") {
		t.Fatalf("resources/read: %d %s (ingress: %v, worker: %v)", status, body, aPerms.errs, workerPerms.errs)
	}
	// A call with progress events.
	if status, body := post(a+"/demo/mcp", `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"slow","arguments":{"ms":200},"_meta":{"progressToken":"p"}}}`); status != http.StatusOK || !strings.Contains(body, "notifications/progress") {
		t.Fatalf("call with events: %d %s (worker: %v)", status, body, workerPerms.errs)
	}
	// A sync call cancelled from the other replica.
	done := make(chan struct{})
	go func() {
		defer close(done)
		post(a+"/demo/mcp", `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"slow","arguments":{"ms":20000}}}`)
	}()
	waitUntil(t, func() bool { return calls.Stats().Running == 1 })
	if status, _ := post(b+"/demo/mcp", `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3}}`); status != http.StatusAccepted {
		t.Fatalf("cancel: %d", status)
	}
	waitUntil(t, func() bool { return calls.Stats().Cancelled == 1 })
	<-done

	// Legacy SSE: the stream on replica a, the message posted to replica b.
	streamCtx, stop := context.WithCancel(ctx)
	defer stop()
	req, _ := http.NewRequestWithContext(streamCtx, http.MethodGet, a+"/sse", nil)
	req.Header.Set("x-litellm-key", "sk-k")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events := make(chan string, 8)
	go func() {
		buf := make([]byte, 1<<16)
		for {
			n, err := resp.Body.Read(buf)
			if n > 0 {
				events <- string(buf[:n])
			}
			if err != nil {
				close(events)
				return
			}
		}
	}()
	first := <-events
	_, endpoint, _ := strings.Cut(first, "data: ")
	endpoint = strings.TrimSpace(endpoint)
	if status, body := post(b+endpoint, `{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"demo-echo","arguments":{"text":"handed over"}}}`); status != http.StatusAccepted {
		t.Fatalf("POST to the other replica: %d %s (ingress b: %v, ingress a: %v)", status, body, bPerms.errs, aPerms.errs)
	}
	select {
	case ev := <-events:
		var probe struct{}
		_, data, _ := strings.Cut(ev, "data: ")
		if !strings.Contains(ev, "handed over") || json.Unmarshal([]byte(strings.TrimSpace(data)), &probe) != nil {
			t.Fatalf("stream got %q", ev)
		}
	case <-ctx.Done():
		t.Fatal("the handed-over answer never reached the stream")
	}

	// An elicitation during a call: the request reaches the client, its
	// answer reaches the worker.
	h := map[string]string{"x-litellm-key": "sk-k", "Authorization": "Bearer permitted"}
	tr, err := transport.NewStreamableHTTP(a+"/demo/mcp", transport.WithHTTPHeaders(h))
	if err != nil {
		t.Fatal(err)
	}
	asker := mcpClient(ctx, t, client.NewClient(tr, client.WithElicitationHandler(acceptName{})))
	var call mcp.CallToolRequest
	call.Params.Name = demoserver.ToolAsk
	if res, err := asker.CallTool(ctx, call); err != nil || len(res.Content) == 0 || res.Content[0].(mcp.TextContent).Text != "answer: Ada" {
		t.Fatalf("ask: %v %+v (ingress: %v, worker: %v)", err, res, aPerms.errs, workerPerms.errs)
	}

	// A resource subscription made on replica a, its updates on a stream
	// held by replica b, the unsubscription announced from replica a.
	listenTr, err := transport.NewStreamableHTTP(b+"/demo/mcp", transport.WithHTTPHeaders(h), transport.WithContinuousListening())
	if err != nil {
		t.Fatal(err)
	}
	listener := mcpClient(ctx, t, client.NewClient(listenTr))
	var updates atomic.Int32
	listener.OnNotification(func(n mcp.JSONRPCNotification) {
		if n.Method == string(mcp.MethodNotificationResourceUpdated) {
			updates.Add(1)
		}
	})
	var sub mcp.SubscribeRequest
	sub.Params.URI = demoserver.ResourceReadme
	if err := asker.Subscribe(ctx, sub); err != nil {
		t.Fatalf("subscribe: %v (worker: %v)", err, workerPerms.errs)
	}
	touch := mcp.CallToolRequest{}
	touch.Params.Name = demoserver.ToolTouch
	touch.Params.Arguments = map[string]any{"uri": demoserver.ResourceReadme}
	waitUntil(t, func() bool {
		if _, err := asker.CallTool(ctx, touch); err != nil {
			t.Fatal(err)
		}
		return updates.Load() > 0
	})
	var unsub mcp.UnsubscribeRequest
	unsub.Params.URI = demoserver.ResourceReadme
	if err := asker.Unsubscribe(ctx, unsub); err != nil {
		t.Fatalf("unsubscribe: %v", err)
	}
	waitUntil(t, func() bool {
		res, err := asker.CallTool(ctx, touch)
		return err == nil && res.Content[0].(mcp.TextContent).Text == "notified 0 subscriber(s)"
	})
	for _, p := range []*permErrors{aPerms, bPerms, workerPerms} {
		p.mu.Lock()
		errs := p.errs
		p.mu.Unlock()
		if len(errs) > 0 {
			t.Fatalf("permission violations: %v", errs)
		}
	}
}

// acceptName answers every elicitation with the name Ada.
type acceptName struct{}

func (acceptName) Elicit(context.Context, mcp.ElicitationRequest) (*mcp.ElicitationResult, error) {
	return &mcp.ElicitationResult{ElicitationResponse: mcp.ElicitationResponse{
		Action: mcp.ElicitationResponseActionAccept, Content: map[string]any{"answer": "Ada"},
	}}, nil
}

// mcpClient starts and initializes c, closed with the test.
func mcpClient(ctx context.Context, t *testing.T, c *client.Client) *client.Client {
	t.Helper()
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var init mcp.InitializeRequest
	init.Params.ClientInfo = mcp.Implementation{Name: "permissions-test", Version: "0"}
	if _, err := c.Initialize(ctx, init); err != nil {
		t.Fatal(err)
	}
	return c
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
