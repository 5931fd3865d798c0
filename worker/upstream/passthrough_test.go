package upstream_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/worker/upstream"
)

// fakeToolResult is what the fake server below answers tools/call with: member
// order, an extension member and a _meta that mcp-go's CallToolResult would
// reorder, drop or rewrite.
const fakeToolResult = `{"structuredContent":{"b":2,"a":1},"content":[{"type":"text","text":"hi"}],"x-vendor":{"kept":true},"_meta":{"vendor/trace":"abc"}}`

// A tool result reaches the caller exactly as the upstream sent it, on a
// 2025-11-25 session (the workers' default).
func TestPool_CallTool_ResultPassedThrough(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		var msg struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
		}
		body, _ := io.ReadAll(r.Body)
		if json.Unmarshal(body, &msg) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.Header().Set("Mcp-Session-Id", "s1")
		var result string
		switch msg.Method {
		case "initialize":
			result = `{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"fake","version":"1"}}`
		case "tools/call":
			result = fakeToolResult
		default: // notifications/initialized and the like
			w.WriteHeader(http.StatusAccepted)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":`+string(msg.ID)+`,"result":`+result+`}`)
	}))
	t.Cleanup(srv.Close)

	p := newPool(t, upstream.Options{}, nil)
	s := httpServer("fake", config.TransportHTTP, srv.URL)
	s.ProtocolVersion = config.DefaultUpstreamProtocol
	got, err := p.CallTool(contractstest.Ctx(t), s, contracts.NewToken("Bearer u"), "any", json.RawMessage(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != fakeToolResult {
		t.Fatalf("result\n got %s\nwant %s", got, fakeToolResult)
	}
}
