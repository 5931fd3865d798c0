package dispatch

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/contractstest"
)

func newDispatcher(t testing.TB) (*Dispatcher, *nats.Conn, *contracts.Opener) {
	t.Helper()
	ns := contractstest.StartNATS(t)
	nc := ns.Connect(t)
	key, err := contracts.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(nc, contracts.NewSealer(key.Public(), 0), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d, nc, contracts.NewOpener(key)
}

func TestDispatcher_NoWorkersAtOnce(t *testing.T) {
	d, _, _ := newDispatcher(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// A one-minute budget: only the no-responders fast path ends before ctx.
	_, err := d.Call(ctx, NewRequestID(), Call{KeyID: "k", Server: "nobody", Tool: "t", Timeout: time.Minute})
	if err == nil || err.Code != contracts.CodeNoWorkers {
		t.Fatalf("got %v, want no_workers", err)
	}
}

// A worker stand-in that opens the sealed token exactly as a worker does:
// with the binding rebuilt from the message and the subject it received.
func TestDispatcher_SealBindsTheReplySubject(t *testing.T) {
	d, nc, opener := newDispatcher(t)
	opened := make(chan string, 2)
	sub, err := nc.Subscribe(contracts.CallSubject("jira"), func(m *nats.Msg) {
		req, err := contracts.DecodeCallRequest(requestOf(m))
		if err != nil {
			t.Error(err)
			return
		}
		token, err := opener.Open(req.Token, req.Binding(m.Reply), time.Now())
		if err != nil {
			opened <- "refused: " + err.Error()
			return
		}
		opened <- token.Reveal()[contracts.HeaderAuthorization]
		_ = respond(m, contracts.NewCallResponse(req.RequestID, json.RawMessage(`{"content":[]}`), nil))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	raw := contractstest.RecordAll(t, nc, contracts.CallSubject("jira"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, cerr := d.Call(ctx, NewRequestID(), Call{KeyID: "k", Server: "jira", Tool: "t", Token: contracts.NewToken("Bearer bound"), Timeout: time.Second})
	if cerr != nil || string(res) != `{"content":[]}` {
		t.Fatalf("call: %s %v", res, cerr)
	}
	if got := recv(t, opened); got != "Bearer bound" {
		t.Fatalf("worker opened %q", got)
	}

	// Replay the captured message with the answer sent elsewhere: it must not open.
	raw.Flush(t)
	captured := raw.Messages()[0]
	if err := nc.PublishMsg(&nats.Msg{Subject: captured.Subject, Reply: "_INBOX.attacker.1", Header: captured.Header, Data: captured.Data}); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, opened); got == "Bearer bound" {
		t.Fatalf("a redirected replay opened: %q", got)
	}
}

// A worker that never answers costs the call its budget; an answer to
// another request is refused.
func TestDispatcher_WorkerAnswersWrong(t *testing.T) {
	tests := []struct {
		name    string
		answer  nats.MsgHandler
		timeout time.Duration
		want    contracts.ErrorCode
	}{
		{"silent worker", func(*nats.Msg) {}, time.Millisecond, contracts.CodeTimeout},
		{"an error reply keeps its code", func(m *nats.Msg) {
			req, _ := contracts.DecodeCallRequest(requestOf(m))
			_ = respond(m, contracts.NewCallResponse(req.RequestID, nil, contracts.NewError(contracts.CodeForbidden, "no")))
		}, time.Second, contracts.CodeForbidden},
		{"a v1 reply without header", func(m *nats.Msg) {
			req, _ := contracts.DecodeCallRequest(requestOf(m))
			_ = m.Respond([]byte(`{"type":"toolbus.call.response.v1","request_id":"` + req.RequestID + `","result":{}}`))
		}, time.Second, contracts.CodeInternal},
		{"a garbled header", func(m *nats.Msg) {
			_ = m.RespondMsg(&nats.Msg{Header: nats.Header{contracts.HeaderReply: {`{"type":`}}, Data: []byte(`{}`)})
		}, time.Second, contracts.CodeInternal},
		{"two reply headers", func(m *nats.Msg) {
			req, _ := contracts.DecodeCallRequest(requestOf(m))
			w, _ := contracts.EncodeReply(contracts.NewCallResponse(req.RequestID, json.RawMessage(`{}`), nil))
			_ = m.RespondMsg(&nats.Msg{Header: nats.Header{contracts.HeaderReply: {w.Header, w.Header}}, Data: w.Body})
		}, time.Second, contracts.CodeInternal},
		{"reply to another request", func(m *nats.Msg) {
			_ = respond(m, contracts.NewCallResponse("someone-else", json.RawMessage(`{}`), nil))
		}, time.Second, contracts.CodeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, nc, _ := newDispatcher(t)
			sub, err := nc.Subscribe(contracts.CallSubject("w"), tt.answer)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Unsubscribe()
			_, cerr := d.Call(context.Background(), NewRequestID(), Call{KeyID: "k", Server: "w", Tool: "t", Timeout: tt.timeout})
			if cerr == nil || cerr.Code != tt.want {
				t.Fatalf("got %v, want %s", cerr, tt.want)
			}
		})
	}
}

func recv(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("the worker stand-in got nothing")
		return ""
	}
}

// TestDispatcher_EveryKindTakesTheSameRoundTrip: a call, a list and a
// relayed request go out with their header filled and their token sealed
// to their own binding, and come back as their own reply's payload or
// error.
func TestDispatcher_EveryKindTakesTheSameRoundTrip(t *testing.T) {
	d, nc, opener := newDispatcher(t)
	const token = "Bearer every-kind"
	// The payload each kind sends, and must arrive as the body byte for byte.
	const args, params = "{ \"q\" : \"<a & b>\" }", "{\n \"cursor\": \"<c>\" }"
	bodies := map[string]string{contracts.CallSubject("jira"): args, contracts.ListSubject("jira"): "", contracts.RPCSubject("jira"): params}
	standIn := func(subject string, msg func() contracts.Request, binding func(contracts.Request, string) contracts.Binding,
		reply func(id string, payload json.RawMessage, e *contracts.Error) contracts.Reply) {
		sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
			req := msg()
			var e *contracts.Error
			if err := contracts.DecodeRequest(requestOf(m), req); err != nil {
				e = contracts.NewError(contracts.CodeInvalidRequest, "%v", err)
			} else if got, err := opener.Open(req.Header().Token, binding(req, m.Reply), time.Now()); err != nil || got.Reveal()[contracts.HeaderAuthorization] != token {
				e = contracts.NewError(contracts.CodeSealInvalid, "does not open")
			} else if h := req.Header(); h.KeyID != "k" || h.Server != "jira" || h.TokenFP != contracts.Fingerprint(token) || h.TimeoutMS != 1000 {
				e = contracts.NewError(contracts.CodeInvalidRequest, "header %+v", h)
			} else if string(m.Data) != bodies[subject] || strings.Contains(m.Header.Get(contracts.HeaderRequest), "<") {
				e = contracts.NewError(contracts.CodeInvalidRequest, "body %q, header %q", m.Data, m.Header.Get(contracts.HeaderRequest))
			} else if c, ok := req.(*contracts.CallRequest); ok && c.Tool != "t-é" {
				e = contracts.NewError(contracts.CodeInvalidRequest, "tool %q", c.Tool)
			}
			_ = respond(m, reply(req.Header().RequestID, json.RawMessage(`[{"name":"t"}]`), e))
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Unsubscribe() })
	}
	standIn(contracts.CallSubject("jira"), func() contracts.Request { return new(contracts.CallRequest) },
		func(r contracts.Request, to string) contracts.Binding { return r.(*contracts.CallRequest).Binding(to) },
		func(id string, p json.RawMessage, e *contracts.Error) contracts.Reply {
			return contracts.NewCallResponse(id, p, e)
		})
	standIn(contracts.ListSubject("jira"), func() contracts.Request { return new(contracts.ListRequest) },
		func(r contracts.Request, to string) contracts.Binding { return r.(*contracts.ListRequest).Binding(to) },
		func(id string, p json.RawMessage, e *contracts.Error) contracts.Reply {
			return contracts.NewListResponse(id, p, e)
		})
	standIn(contracts.RPCSubject("jira"), func() contracts.Request { return new(contracts.RPCRequest) },
		func(r contracts.Request, to string) contracts.Binding { return r.(*contracts.RPCRequest).Binding(to) },
		func(id string, p json.RawMessage, e *contracts.Error) contracts.Reply {
			return contracts.NewRPCResponse(id, p, e)
		})

	ctx := contractstest.Ctx(t)
	tok := contracts.NewToken(token)
	for name, send := range map[string]func() (json.RawMessage, *contracts.Error){
		"call": func() (json.RawMessage, *contracts.Error) {
			// Arguments as a client may write them (spaces, <, &): they are
			// the body as given, and the seal binds those bytes. A tool name
			// beyond ASCII crosses in the header.
			return d.Call(ctx, NewRequestID(), Call{KeyID: "k", Server: "jira", Tool: "t-é", Token: tok, Timeout: time.Second,
				Arguments: json.RawMessage(args)})
		},
		"list": func() (json.RawMessage, *contracts.Error) {
			return d.List(ctx, NewRequestID(), List{KeyID: "k", Server: "jira", Token: tok, Timeout: time.Second})
		},
		"rpc": func() (json.RawMessage, *contracts.Error) {
			return d.RPC(ctx, NewRequestID(), RPC{KeyID: "k", Server: "jira", Method: "prompts/list", Token: tok, Timeout: time.Second,
				Params: json.RawMessage(params)})
		},
	} {
		if res, cerr := send(); cerr != nil || string(res) != `[{"name":"t"}]` {
			t.Errorf("%s: %s %v", name, res, cerr)
		}
	}
}

// A worker that answers every request twice: the second answer reaches no
// later call, although round trips reuse their reply channels (waiter).
func TestDispatcher_DuplicateRepliesReachNoLaterCall(t *testing.T) {
	d, nc, _ := newDispatcher(t)
	sub, err := nc.Subscribe(contracts.CallSubject("twice"), func(m *nats.Msg) {
		req, err := contracts.DecodeCallRequest(requestOf(m))
		if err != nil {
			t.Error(err)
			return
		}
		for range 2 {
			_ = respond(m, contracts.NewCallResponse(req.RequestID, json.RawMessage(`{"id":"`+req.RequestID+`"}`), nil))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	ctx := contractstest.Ctx(t)
	for i := range 300 {
		id := NewRequestID()
		res, cerr := d.Call(ctx, id, Call{KeyID: "k", Server: "twice", Tool: "t", Timeout: time.Second})
		if cerr != nil || string(res) != `{"id":"`+id+`"}` {
			t.Fatalf("call %d: %s %v", i, res, cerr)
		}
	}
}

// A round trip's waiter goes back empty: no reply left in its channel, its
// timer stopped, its header cleared; and the inbox hands nothing to a
// request no longer pending.
func TestWaiter_GoesBackEmpty(t *testing.T) {
	d, _, _ := newDispatcher(t)
	wt := &waiter{ch: make(chan *nats.Msg, 1), header: nats.Header{}}
	d.mu.Lock()
	d.pending["r1"] = wt.ch
	d.mu.Unlock()
	late := &nats.Msg{Subject: d.replySubject("r1"), Data: []byte("late")}
	d.deliver(late)
	timeout := wt.start(time.Hour)
	wt.value[0] = "v"
	wt.header[contracts.HeaderRequest] = wt.value[:]
	d.mu.Lock()
	delete(d.pending, "r1")
	d.mu.Unlock()
	putWaiter(wt)
	if len(wt.ch) != 0 || len(wt.header) != 0 || wt.value[0] != "" {
		t.Fatalf("waiter not emptied: %d in channel, header %v", len(wt.ch), wt.header)
	}
	if wt.timer.Stop() {
		t.Fatal("the timer still runs")
	}
	d.deliver(late)
	select {
	case m := <-wt.ch:
		t.Fatalf("delivered to a request no longer pending: %q", m.Data)
	case <-timeout:
		t.Fatal("a stopped timer fired")
	default:
	}
}
