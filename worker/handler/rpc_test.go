package handler_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/worker/demoserver"
	"github.com/toolbus/toolbus/worker/handler"
	"github.com/toolbus/toolbus/worker/internal/workertest"
)

func (f *fixture) rpc(t *testing.T, subject string, req *contracts.RPCRequest) *contracts.RPCResponse {
	t.Helper()
	return answer(t, f, handler.RPCOp, subject, workertest.Wire(t, req), contracts.DecodeRPCResponse)
}

func TestHandler_RPC(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	const token = "Bearer user-token-1"
	subject := contracts.RPCSubject("demo")

	resp := f.rpc(t, subject, f.keys.RPCRequest(t, "demo", "resources/read", `{"uri":"`+demoserver.ResourceReadme+`"}`, token, reply))
	if resp.Error != nil || !strings.Contains(string(resp.Result), "toolbus demo server") {
		t.Fatalf("resources/read: %+v %s", resp.Error, resp.Result)
	}
	if got := f.demo.Recorder.Authorizations(); got[len(got)-1] != token {
		t.Fatalf("the upstream saw %q", got[len(got)-1])
	}
	if resp := f.rpc(t, subject, f.keys.RPCRequest(t, "demo", "ping", "", token, reply)); resp.Error != nil {
		t.Fatalf("ping: %+v", resp.Error)
	}
	for _, tt := range []struct {
		name    string
		subject string
		req     *contracts.RPCRequest
		want    contracts.ErrorCode
	}{
		// mcp-go answers a missing resource with -32002 on 2025-11-25
		// sessions (the default upstream protocol), with invalid params on
		// the stateless 2026 revision.
		{"a missing resource", subject, f.keys.RPCRequest(t, "demo", "resources/read", `{"uri":"demo://nope"}`, token, reply), contracts.CodeNotFound},
		{"a missing prompt", subject, f.keys.RPCRequest(t, "demo", "prompts/get", `{"name":"nope"}`, token, reply), contracts.CodeInvalidRequest},
		{"params of the wrong shape", subject, f.keys.RPCRequest(t, "demo", "prompts/get", `{"name":7}`, token, reply), contracts.CodeInvalidRequest},
		{"sealed for another reply subject", subject, f.keys.RPCRequest(t, "demo", "ping", "", token, "_INBOX.elsewhere"), contracts.CodeSealInvalid},
		{"moved to another server's subject", contracts.RPCSubject("open"), f.keys.RPCRequest(t, "demo", "ping", "", token, reply), contracts.CodeSealInvalid},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := f.rpc(t, tt.subject, tt.req); got.Error == nil || got.Error.Code != tt.want {
				t.Fatalf("got %+v, want %s", got.Error, tt.want)
			}
		})
	}
	t.Run("params or timeout changed after sealing", func(t *testing.T) {
		for name, change := range map[string]func(*contracts.RPCRequest){
			"params":  func(r *contracts.RPCRequest) { r.Params = json.RawMessage(`{"name":"other"}`) },
			"timeout": func(r *contracts.RPCRequest) { r.TimeoutMS += 1000 },
		} {
			req := f.keys.RPCRequest(t, "demo", "prompts/get", `{"name":"greet"}`, token, reply)
			change(req)
			if got := f.rpc(t, subject, req); got.Error == nil || got.Error.Code != contracts.CodeSealInvalid {
				t.Errorf("%s: got %+v, want seal_invalid", name, got.Error)
			}
		}
	})
	t.Run("sealed for another method", func(t *testing.T) {
		req := f.keys.RPCRequest(t, "demo", "prompts/list", "", token, reply)
		req.Method = "resources/list"
		if got := f.rpc(t, subject, req); got.Error == nil || got.Error.Code != contracts.CodeSealInvalid {
			t.Fatalf("got %+v, want seal_invalid", got.Error)
		}
	})
	t.Run("a method that is not relayed", func(t *testing.T) {
		req := f.keys.RPCRequest(t, "demo", "ping", "", "", reply)
		req.Method = "tools/call"
		out, _ := f.serve(t, handler.RPCOp, subject, workertest.Wire(t, req))
		resp, err := contracts.DecodeRPCResponse(out)
		if err != nil || resp.Error == nil || resp.Error.Code != contracts.CodeInvalidRequest {
			t.Fatalf("got %+v (%v), want invalid_request", out, err)
		}
	})
}

// eventsFixture is a handler whose events are recorded.
type eventsFixture struct {
	*fixture
	mu     sync.Mutex
	events map[string][]contracts.CallEvent // by subject
}

func newEventsFixture(t *testing.T) *eventsFixture {
	f := &eventsFixture{events: map[string][]contracts.CallEvent{}}
	f.fixture = newFixture(t, func(subject string, data []byte) error {
		var ev contracts.CallEvent
		if err := json.Unmarshal(data, &ev); err != nil {
			t.Errorf("event %s: %v", data, err)
		}
		f.mu.Lock()
		f.events[subject] = append(f.events[subject], ev)
		f.mu.Unlock()
		return nil
	})
	return f
}

func (f *eventsFixture) of(subject string) []contracts.CallEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]contracts.CallEvent(nil), f.events[subject]...)
}

// callWithEvents builds a slow call with EventsTo, sealed with it.
func (f *eventsFixture) callWithEvents(t *testing.T, ms int, eventsTo string) *contracts.CallRequest {
	t.Helper()
	const token = "Bearer user-token-1"
	return f.keys.Request(t, workertest.Call{Server: "demo", Tool: demoserver.ToolSlow, Args: fmt.Sprintf(`{"ms":%d}`, ms),
		Token: token, Timeout: 30 * time.Second, EventsTo: eventsTo}, reply)
}

func TestHandler_CallEvents(t *testing.T) {
	t.Parallel()
	f := newEventsFixture(t)
	req := f.callWithEvents(t, 200, "_INBOX.ingress.ev.1")
	if resp := f.call(t, contracts.CallSubject("demo"), workertest.Wire(t, req)); resp.Error != nil {
		t.Fatalf("call: %+v", resp.Error)
	}
	var progress, logs int
	for _, ev := range f.of("_INBOX.ingress.ev.1") {
		if ev.Type != contracts.TypeCallEvent || ev.RequestID != req.RequestID {
			t.Fatalf("event %+v: want the call's type and request id", ev)
		}
		if ev.Progress != nil {
			progress++
		}
		if len(ev.Log) > 0 {
			logs++
			if !strings.Contains(string(ev.Log), `"slow: step`) || strings.Contains(string(ev.Log), "_meta") {
				t.Errorf("log %s: want the upstream's params as sent", ev.Log)
			}
		}
	}
	if progress < 3 || logs < 3 {
		t.Fatalf("%d progress and %d log events, want at least 3 each", progress, logs)
	}

	t.Run("never onto a toolbus subject", func(t *testing.T) {
		for _, subject := range []string{contracts.CancelSubject("x"), "_INBOX.*", "_INBOX.>"} {
			req := f.callWithEvents(t, 50, subject)
			if resp := f.call(t, contracts.CallSubject("demo"), workertest.Wire(t, req)); resp.Error != nil {
				t.Fatalf("call: %+v", resp.Error)
			}
			if got := f.of(subject); len(got) > 0 {
				t.Fatalf("events published on %s", subject)
			}
		}
	})
}

func TestHandler_Cancel(t *testing.T) {
	t.Parallel()
	f := newEventsFixture(t)
	req := f.callWithEvents(t, 20000, "")
	done := make(chan *contracts.CallResponse, 1)
	go func() { done <- f.call(t, contracts.CallSubject("demo"), workertest.Wire(t, req)) }()
	contractstest.Eventually(t, "the call to run", func() bool { return f.h.Running() == 1 })
	if f.h.Cancel("someone-else") {
		t.Fatal("cancelled a call that does not run here")
	}
	if !f.h.Cancel(req.RequestID) {
		t.Fatal("the running call was not found")
	}
	select {
	case resp := <-done:
		if resp.Error == nil || resp.Error.Code != contracts.CodeCancelled {
			t.Fatalf("got %+v, want cancelled", resp.Error)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the cancelled call did not end")
	}
	if n := f.h.Running(); n != 0 {
		t.Fatalf("%d calls still registered", n)
	}
}
