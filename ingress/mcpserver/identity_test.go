package mcpserver_test

import (
	"errors"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/contractstest"
)

// perServerUser is a caller of the master key who sends its credential
// only as x-mcp-counted-authorization (LiteLLM's per-server header), no
// Authorization: before callers had an identity of their own, every such
// user of one key was one owner.
func perServerUser(token string) map[string]string {
	h := headers(masterKey, "")
	h["x-mcp-counted-authorization"] = token
	return h
}

// Two users of one key who send their credential per server cannot see or
// cancel each other's tasks, nor cancel each other's in-flight calls.
func TestIdentity_PerServerUsersOfOneKeyAreApart(t *testing.T) {
	g := startGateway(t)
	ctx := contractstest.Ctx(t)
	alice, bob := perServerUser("Bearer alice-7f3a"), perServerUser("Bearer bob-9c1e")
	a, _ := connect(t, g.URL+"/mcp", alice)
	b, _ := connect(t, g.URL+"/mcp", bob)

	t.Run("tasks", func(t *testing.T) {
		before := g.Calls.Stats()
		task := sendTaskCall(t, ctx, a.GetTransport(), "counted-slow", map[string]any{"ms": 20000})
		contractstest.Eventually(t, "the task to start upstream", func() bool { return g.Calls.Stats().Running == 1 })
		if _, err := b.GetTask(ctx, mcp.GetTaskRequest{Params: mcp.GetTaskParams{TaskId: task.TaskId}}); !errors.Is(err, mcp.ErrInvalidParams) {
			t.Errorf("bob's tasks/get of alice's task: %v, want not found", err)
		}
		if _, err := b.CancelTask(ctx, mcp.CancelTaskRequest{Params: mcp.CancelTaskParams{TaskId: task.TaskId}}); !errors.Is(err, mcp.ErrInvalidParams) {
			t.Errorf("bob's tasks/cancel of alice's task: %v, want not found", err)
		}
		if list, err := b.ListTasks(ctx, mcp.ListTasksRequest{}); err != nil || len(list.Tasks) != 0 {
			t.Errorf("bob's tasks/list: %v %+v, want none", err, list)
		}
		got, err := a.GetTask(ctx, mcp.GetTaskRequest{Params: mcp.GetTaskParams{TaskId: task.TaskId}})
		if err != nil || got.Status != mcp.TaskStatusWorking || g.Calls.Stats().Cancelled != before.Cancelled {
			t.Fatalf("alice's task after bob's attempts: %v %+v", err, got)
		}
		if _, err := a.CancelTask(ctx, mcp.CancelTaskRequest{Params: mcp.CancelTaskParams{TaskId: task.TaskId}}); err != nil {
			t.Fatalf("alice's own tasks/cancel: %v", err)
		}
		contractstest.Eventually(t, "alice's call to be cancelled", func() bool { return g.Calls.Stats().Cancelled == before.Cancelled+1 })
	})

	t.Run("in-flight calls", func(t *testing.T) {
		// Alice runs a call of 2 s and one of 20 s; bob sends
		// notifications/cancelled for the first (same JSON-RPC id, same
		// session header), alice for the second. Alice's first call must
		// run to its end.
		before := g.Calls.Stats()
		results := map[string]chan *transport.JSONRPCResponse{}
		for id, ms := range map[string]int{"call-7": 2000, "call-8": 20000} {
			results[id] = make(chan *transport.JSONRPCResponse, 1)
			go func() {
				resp, err := a.GetTransport().SendRequest(ctx, transport.JSONRPCRequest{
					JSONRPC: mcp.JSONRPC_VERSION, ID: mcp.NewRequestId(id), Method: "tools/call",
					Params: map[string]any{"name": "counted-slow", "arguments": map[string]any{"ms": ms}},
				})
				if err != nil {
					resp = nil
				}
				results[id] <- resp
			}()
		}
		contractstest.Eventually(t, "both calls to start upstream", func() bool { return g.Calls.Stats().Running == 2 })
		cancel := func(who map[string]string, id string) {
			h := maps.Clone(who)
			if s := a.GetSessionId(); s != "" {
				h["Mcp-Session-Id"] = s
			}
			resp := post(t, g.URL+"/mcp", h, `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"`+id+`"}}`)
			if resp.Status != http.StatusAccepted {
				t.Fatalf("notifications/cancelled: %d %s", resp.Status, resp.Body)
			}
		}
		cancel(bob, "call-7")
		cancel(alice, "call-8")
		contractstest.Eventually(t, "alice's second call to be cancelled", func() bool { return g.Calls.Stats().Cancelled >= before.Cancelled+1 })
		resp := <-results["call-7"]
		if resp == nil || resp.Error != nil || !strings.Contains(string(resp.Result), "slept") {
			t.Fatalf("alice's first call after bob's cancellation: %+v, want it to run to its end", resp)
		}
		if s := g.Calls.Stats(); s.Cancelled != before.Cancelled+1 {
			t.Fatalf("calls %+v: one more was cancelled than alice asked", s)
		}
		<-results["call-8"]
	})
}

// The short fingerprint of a credential (48 bits, for logs) decides
// nothing: with every credential forced to one fingerprint, two users of one
// key still own their tasks alone. (Were ownership derived from the
// fingerprint, bob would read alice's task here.)
func TestIdentity_ACollidingShortFingerprintGrantsNothing(t *testing.T) {
	g := startGateway(t)
	ctx := contractstest.Ctx(t)
	restore := contracts.OverrideFingerprintForTest("fp_000000000000")
	defer restore()
	for name, pair := range map[string][2]map[string]string{
		"Authorization":               {headers(masterKey, "Bearer alice-7f3a"), headers(masterKey, "Bearer bob-9c1e")},
		"x-mcp-counted-authorization": {perServerUser("Bearer alice-7f3a"), perServerUser("Bearer bob-9c1e")},
	} {
		t.Run(name, func(t *testing.T) {
			if contracts.NewToken("Bearer alice-7f3a").Fingerprint() != contracts.NewToken("Bearer bob-9c1e").Fingerprint() {
				t.Fatal("the fingerprints do not collide: the test would prove nothing")
			}
			a, _ := connect(t, g.URL+"/mcp", pair[0])
			b, _ := connect(t, g.URL+"/mcp", pair[1])
			task := sendTaskCall(t, ctx, a.GetTransport(), "counted-whoami", nil)
			if _, err := a.WaitForTask(ctx, mcp.GetTaskRequest{Params: mcp.GetTaskParams{TaskId: task.TaskId}}, 50*time.Millisecond); err != nil {
				t.Fatalf("alice's task: %v", err)
			}
			if _, err := b.GetTask(ctx, mcp.GetTaskRequest{Params: mcp.GetTaskParams{TaskId: task.TaskId}}); !errors.Is(err, mcp.ErrInvalidParams) {
				t.Errorf("bob read alice's task: %v", err)
			}
			if _, err := b.TaskResult(ctx, mcp.TaskResultRequest{Params: mcp.TaskResultParams{TaskId: task.TaskId}}); !errors.Is(err, mcp.ErrInvalidParams) {
				t.Errorf("bob read alice's task result: %v", err)
			}
		})
	}
}
