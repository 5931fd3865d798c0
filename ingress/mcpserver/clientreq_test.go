package mcpserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
)

// answeringClient is an MCP client's sampling and elicitation handler: it
// records what it was asked and answers. before, when set, runs first.
type answeringClient struct {
	mu          sync.Mutex
	asked       []string // elicitation messages
	prompts     []string // sampling prompts
	before      func()
	elicitCount int
}

func (a *answeringClient) Elicit(_ context.Context, req mcp.ElicitationRequest) (*mcp.ElicitationResult, error) {
	if a.before != nil {
		a.before()
	}
	a.mu.Lock()
	a.asked = append(a.asked, req.Params.Message)
	a.elicitCount++
	a.mu.Unlock()
	return &mcp.ElicitationResult{ElicitationResponse: mcp.ElicitationResponse{
		Action: mcp.ElicitationResponseActionAccept, Content: map[string]any{"answer": "Ada"},
	}}, nil
}

func (a *answeringClient) CreateMessage(_ context.Context, req mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
	prompt := ""
	if len(req.Messages) > 0 {
		if tc, ok := req.Messages[0].Content.(mcp.TextContent); ok {
			prompt = tc.Text
		}
	}
	a.mu.Lock()
	a.prompts = append(a.prompts, prompt)
	a.mu.Unlock()
	return &mcp.CreateMessageResult{
		SamplingMessage: mcp.SamplingMessage{Role: mcp.RoleAssistant, Content: mcp.NewTextContent("completion of " + prompt)},
		Model:           "test-model",
	}, nil
}

// connectAnswering returns an initialized client of url that answers
// sampling and elicitation requests with a.
func connectAnswering(t *testing.T, url string, h map[string]string, a *answeringClient) *client.Client {
	t.Helper()
	tr, err := transport.NewStreamableHTTP(url, transport.WithHTTPHeaders(h))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := initClient(t, client.NewClient(tr, client.WithElicitationHandler(a), client.WithSamplingHandler(a)))
	return c
}

func TestMCP_SamplingAndElicitation(t *testing.T) {
	g := startGateway(t)
	ctx := contractstest.Ctx(t)
	for _, tt := range []struct{ endpoint, prefix string }{{"/demo/mcp", ""}, {"/mcp", "demo-"}} {
		t.Run(tt.endpoint, func(t *testing.T) {
			a := &answeringClient{}
			c := connectAnswering(t, g.URL+tt.endpoint, headers(masterKey, userToken), a)

			res, err := callTool(ctx, c, tt.prefix+"ask", map[string]any{"question": "Who are you?"})
			if err != nil || res.IsError || text(t, res) != "answer: Ada" {
				t.Fatalf("ask: %v %+v", err, res)
			}
			res, err = callTool(ctx, c, tt.prefix+"sample", map[string]any{"prompt": "say hi"})
			if err != nil || res.IsError || text(t, res) != "test-model: completion of say hi" {
				t.Fatalf("sample: %v %+v", err, res)
			}
			a.mu.Lock()
			defer a.mu.Unlock()
			if len(a.asked) != 1 || a.asked[0] != "Who are you?" || len(a.prompts) != 1 || a.prompts[0] != "say hi" {
				t.Fatalf("the client was asked %q and prompted %q, want the upstream's question and prompt once each", a.asked, a.prompts)
			}
		})
	}
}

// A client that did not declare the capabilities, and a REST caller, get a
// failed call at once, never a hang: the upstream is told nobody can answer.
func TestMCP_ClientRequestsWithoutAClientThatAnswers(t *testing.T) {
	g := startGateway(t)
	ctx := contractstest.Ctx(t)
	c, _ := connect(t, g.URL+"/demo/mcp", headers(masterKey, userToken))
	res, err := callTool(ctx, c, "ask", nil)
	if err == nil && !res.IsError {
		t.Fatalf("ask without elicitation capability: %+v, want a failed call", res)
	}
	resp := post(t, g.URL+"/mcp/tools/call", headers(masterKey, userToken), `{"name":"demo-sample","arguments":{"prompt":"x"}}`)
	if resp.Status == http.StatusOK && !strings.Contains(string(resp.Body), `"isError":true`) {
		t.Fatalf("REST sample: %d %s, want a failed call", resp.Status, resp.Body)
	}
	if resp.Status >= 500 && resp.Status != http.StatusBadGateway {
		t.Fatalf("REST sample: %d %s", resp.Status, resp.Body)
	}
}

// An answer from another user (same gateway key, another Authorization) or
// another key is refused by the worker: the call gets the real client's
// answer, though the forged ones arrived first.
func TestMCP_ClientAnswerOnlyFromTheCaller(t *testing.T) {
	g := startGateway(t)
	clientAnswerOnlyFromTheCaller(t, g, headers(masterKey, userToken),
		[]map[string]string{headers(masterKey, "Bearer mallory"), headers(masterKey, ""), headers(teamAKey, userToken)})
}

// The same with every credential forced to one short fingerprint: the
// worker takes the answer of the caller's identity, never of a credential
// whose 48-bit fingerprint matches (were it compared, Mallory's answers
// would be taken).
func TestMCP_ClientAnswerCollidingFingerprintGrantsNothing(t *testing.T) {
	g := startGateway(t)
	restore := contracts.OverrideFingerprintForTest("fp_000000000000")
	defer restore()
	perServer := func(token string) map[string]string {
		h := headers(masterKey, "")
		h["x-mcp-demo-authorization"] = token
		return h
	}
	clientAnswerOnlyFromTheCaller(t, g, perServer(userToken),
		[]map[string]string{perServer("Bearer mallory"), headers(masterKey, "Bearer mallory"), perServer("Bearer mallory-2")})
}

func clientAnswerOnlyFromTheCaller(t *testing.T, g *gateway, caller map[string]string, forgers []map[string]string) {
	ctx := contractstest.Ctx(t)
	bus := contractstest.RecordAll(t, g.Env.Conn, "_INBOX.>")
	var forged []int
	a := &answeringClient{}
	a.before = func() {
		// The request as it crossed the bus names the call and the request.
		// The recorder is another subscriber: it may see the message after
		// the ingress has handed it to the client, so wait for it (bounded;
		// this runs in the client's handler, where the test cannot Fatal).
		var ev *contracts.CallEvent
		for deadline := time.Now().Add(contractstest.WaitTimeout); ev == nil && time.Now().Before(deadline); {
			for _, m := range bus.Messages() {
				var e contracts.CallEvent
				if json.Unmarshal(m.Data, &e) == nil && e.Request != nil {
					ev = &e
				}
			}
			if ev == nil {
				time.Sleep(5 * time.Millisecond)
			}
		}
		if ev == nil {
			t.Error("no client request on the bus")
			return
		}
		id, _ := json.Marshal(contracts.ClientRequestRPCID("demo", ev.RequestID, ev.Request.ID))
		body := fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":{"action":"accept","content":{"answer":"Mallory"}}}`, id)
		for _, h := range forgers {
			forged = append(forged, post(t, g.URL+"/demo/mcp", h, body).Status)
		}
	}
	c := connectAnswering(t, g.URL+"/demo/mcp", caller, a)
	res, err := callTool(ctx, c, "ask", nil)
	if err != nil || text(t, res) != "answer: Ada" {
		t.Fatalf("ask: %v %+v, want the caller's own answer", err, res)
	}
	// Each forged answer is accepted by the ingress (it may reach the demo
	// endpoint) and refused by the worker: another user's credential, no
	// credential, another gateway key.
	if len(forged) != 3 || forged[0] != http.StatusAccepted || forged[1] != http.StatusAccepted || forged[2] != http.StatusAccepted {
		t.Fatalf("forged answers answered %v", forged)
	}
	if !strings.Contains(g.Logs.String(), "client answer refused") {
		t.Fatal("the worker did not log the refused answers")
	}
}

// ingress.tool_separator names the tools of the aggregated endpoint and of
// the REST API, and keys' tool lists.
func TestMCP_ToolSeparator(t *testing.T) {
	g := startGateway(t, func(f *config.File) {
		f.Ingress.ToolSeparator = "__"
		f.Keys[1].Tools = []string{"demo__echo"}
	})
	ctx := contractstest.Ctx(t)
	c, _ := connect(t, g.URL+"/mcp", headers(teamAKey, userToken))
	tools, err := c.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(tools.Tools); !slices.Equal(got, []string{"demo__echo"}) {
		t.Fatalf("team-a sees %v, want [demo__echo]", got)
	}
	res, err := callTool(ctx, c, "demo__echo", map[string]any{"text": "hi"})
	if err != nil || text(t, res) != "hi" {
		t.Fatalf("demo__echo: %v %+v", err, res)
	}
	if _, err := callTool(ctx, c, "demo-echo", map[string]any{"text": "hi"}); err == nil {
		t.Fatal("demo-echo resolved with separator __")
	}
	resp := post(t, g.URL+"/mcp/tools/call", headers(teamAKey, userToken), `{"name":"demo__echo","arguments":{"text":"rest"}}`)
	if resp.Status != http.StatusOK || !strings.Contains(string(resp.Body), `"rest"`) {
		t.Fatalf("REST demo__echo: %d %s", resp.Status, resp.Body)
	}
}
