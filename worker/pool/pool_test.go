package pool_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/worker/demoserver"
	"github.com/toolbus/toolbus/worker/internal/workertest"
	"github.com/toolbus/toolbus/worker/pool"
	"github.com/toolbus/toolbus/worker/upstream"
)

// env is a worker pool on an embedded NATS server, in front of demo
// upstreams, and a client connection playing the ingress.
type env struct {
	nats   *contractstest.NATS
	nc     *nats.Conn // the ingress side
	keys   workertest.Keys
	logs   *contractstest.LogBuffer
	demo   *demoserver.Running
	locked *demoserver.Running // requires lockedToken
	pool   *pool.Pool
}

const lockedToken = "Bearer the-right-one"

// setup starts the environment; adjust, if set, edits the servers
// (demo, other: HTTP demo; locked: SSE demo requiring lockedToken).
func setup(t *testing.T, worker config.Worker, adjust func(map[string]*config.Server), opts ...pool.Option) *env {
	t.Helper()
	e := &env{nats: contractstest.StartNATS(t), keys: workertest.NewKeys(t), logs: &contractstest.LogBuffer{}}
	e.nc = e.nats.Connect(t)
	e.demo = workertest.StartDemo(t, demoserver.Options{}, demoserver.TransportHTTP)
	e.locked = workertest.StartDemo(t, demoserver.Options{RequireToken: lockedToken}, demoserver.TransportSSE)
	all := map[string]*config.Server{
		"demo":   {URL: e.demo.URL},
		"other":  {URL: e.demo.URL},
		"locked": {URL: e.locked.URL, Transport: config.TransportSSE},
	}
	if adjust != nil {
		adjust(all)
	}
	cfg := workertest.Config(t, all, worker)
	e.pool = workertest.StartPool(t, cfg, e.nats.Connect(t), e.keys.Opener, e.logs.Logger("worker"), append([]pool.Option{pool.WithName("test-worker")}, opts...)...)
	return e
}

// pending is a request in flight.
type pending struct {
	req *contracts.CallRequest
	sub *nats.Subscription
}

// send seals c for a fresh inbox and publishes it on subject (default: the
// call subject of c.Server), after mutate.
func (e *env) send(t *testing.T, c workertest.Call, subject string, mutate func(*contracts.CallRequest)) pending {
	t.Helper()
	inbox := nats.NewInbox()
	sub, err := e.nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	req := e.keys.Request(t, c, inbox)
	if mutate != nil {
		mutate(req)
	}
	if subject == "" {
		subject = contracts.CallSubject(c.Server)
	}
	if err := e.nc.PublishMsg(workertest.Msg(t, subject, inbox, req)); err != nil {
		t.Fatal(err)
	}
	return pending{req: req, sub: sub}
}

func (p pending) wait(t *testing.T) *contracts.CallResponse {
	t.Helper()
	m, err := p.sub.NextMsgWithContext(contractstest.Ctx(t))
	if err != nil {
		t.Fatalf("waiting for the reply to %s: %v", p.req.RequestID, err)
	}
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		t.Fatalf("no responders for %s", p.req.RequestID)
	}
	resp, err := contracts.DecodeCallResponse(workertest.ReplyOf(m))
	if err != nil {
		t.Fatalf("reply %q: %v", m.Data, err)
	}
	if resp.RequestID != p.req.RequestID {
		t.Fatalf("reply for %q, want %q", resp.RequestID, p.req.RequestID)
	}
	return resp
}

func (e *env) call(t *testing.T, c workertest.Call) *contracts.CallResponse {
	t.Helper()
	return e.send(t, c, "", nil).wait(t)
}

// waitStopped waits for the error of a Stop started in a goroutine; Stop
// must succeed.
func waitStopped(t *testing.T, stopped <-chan error) {
	t.Helper()
	select {
	case err := <-stopped:
		if err != nil {
			t.Errorf("Stop: %v", err)
		}
	case <-contractstest.Ctx(t).Done():
		t.Fatal("Stop did not return")
	}
}

func TestPool_RoundTrip(t *testing.T) {
	t.Parallel()
	e := setup(t, config.Worker{}, nil)
	const token = "Bearer round-trip-user"

	resp := e.call(t, workertest.Call{Server: "demo", Tool: demoserver.ToolWhoami, Token: token})
	if resp.Error != nil {
		t.Fatalf("error %+v", resp.Error)
	}
	if got := workertest.Text(t, resp.Result); got != token {
		t.Errorf("whoami = %q, want %q", got, token)
	}

	// A result larger than the bus's maximum payload (1 MiB by default)
	// is answered with an error, not left to time out.
	big := e.call(t, workertest.Call{Server: "demo", Tool: demoserver.ToolBig, Args: fmt.Sprintf(`{"bytes":%d}`, e.nc.MaxPayload()), Token: token})
	if workertest.Code(big) != contracts.CodeUpstreamError || !strings.Contains(big.Error.Message, "maximum message size") {
		t.Errorf("a result over the max payload: %+v", big.Error)
	}

	// tools/list
	inbox := nats.NewInbox()
	sub, err := e.nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	list := e.keys.ListRequest(t, "demo", token, inbox)
	if err := e.nc.PublishMsg(workertest.Msg(t, contracts.ListSubject("demo"), inbox, list)); err != nil {
		t.Fatal(err)
	}
	m, err := sub.NextMsgWithContext(contractstest.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	lresp, err := contracts.DecodeListResponse(workertest.ReplyOf(m))
	if err != nil || lresp.Error != nil || lresp.RequestID != list.RequestID {
		t.Fatalf("list reply %s: %v", m.Data, err)
	}

	// ping
	pm, err := e.nc.Request(contracts.PingSubject, nil, contractstest.WaitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	var ping contracts.PingResponse
	if err := json.Unmarshal(pm.Data, &ping); err != nil || ping.Type != contracts.TypePingResponse || ping.Worker != "test-worker" || len(ping.Servers) != 3 {
		t.Errorf("ping = %s, %v", pm.Data, err)
	}
}

func TestPool_Seal(t *testing.T) {
	t.Parallel()
	e := setup(t, config.Worker{}, nil)
	const token = "Bearer seal-user"
	whoami := workertest.Call{Server: "demo", Tool: demoserver.ToolWhoami, Token: token}

	tests := []struct {
		name    string
		call    workertest.Call
		subject string
		mutate  func(*contracts.CallRequest)
	}{
		{name: "tampered", call: whoami, mutate: func(r *contracts.CallRequest) { r.Token.Ciphertext[3] ^= 0x80 }},
		{name: "moved to another server's subject", call: whoami, subject: contracts.CallSubject("other")},
		{name: "moved with its server field", call: whoami, subject: contracts.CallSubject("other"),
			mutate: func(r *contracts.CallRequest) { r.Server = "other" }},
		{name: "another tool", call: whoami, mutate: func(r *contracts.CallRequest) {
			r.Tool, r.Arguments = demoserver.ToolEcho, json.RawMessage(`{"text":"hi"}`)
		}},
		{name: "expired", call: workertest.Call{Server: "demo", Tool: "whoami", Token: token, Expires: time.Now().Add(-time.Millisecond)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := e.send(t, tt.call, tt.subject, tt.mutate).wait(t)
			if workertest.Code(resp) != contracts.CodeSealInvalid || resp.Error.Retryable {
				t.Errorf("reply %+v, want non-retryable seal_invalid", resp.Error)
			}
		})
	}

	t.Run("replayed", func(t *testing.T) {
		p := e.send(t, whoami, "", nil)
		if resp := p.wait(t); resp.Error != nil {
			t.Fatalf("first use: %+v", resp.Error)
		}
		// The same bytes again, to the same reply subject.
		if err := e.nc.PublishMsg(workertest.Msg(t, contracts.CallSubject("demo"), p.sub.Subject, p.req)); err != nil {
			t.Fatal(err)
		}
		if resp := p.wait(t); workertest.Code(resp) != contracts.CodeSealInvalid {
			t.Errorf("replay: %+v, want seal_invalid", resp.Error)
		}
	})
}

func TestPool_Overloaded(t *testing.T) {
	t.Parallel()
	echo := workertest.Call{Server: "demo", Tool: demoserver.ToolEcho, Args: `{"text":"x"}`}
	slow := workertest.Call{Server: "demo", Tool: demoserver.ToolSlow, Args: `{"ms":400}`}
	for _, tt := range []struct {
		name   string
		worker config.Worker
		adjust func(map[string]*config.Server)
	}{
		{name: "process limit", worker: config.Worker{MaxConcurrency: 1}},
		{name: "server limit", adjust: func(s map[string]*config.Server) { s["demo"].MaxConcurrency = 1 }},
	} {
		t.Run(tt.name+" without a queue", func(t *testing.T) {
			t.Parallel()
			e := setup(t, tt.worker, tt.adjust, pool.WithQueue(0, 0))
			held := e.send(t, slow, "", nil)
			contractstest.Eventually(t, "the slow call to hold the slot", func() bool { return strings.Contains(e.logs.String(), "upstream client connected") })
			resp := e.call(t, echo)
			if workertest.Code(resp) != contracts.CodeOverloaded || !resp.Error.Retryable {
				t.Errorf("reply %+v, want retryable overloaded", resp.Error)
			}
			if resp := held.wait(t); resp.Error != nil {
				t.Errorf("slow call: %+v", resp.Error)
			}
			if resp := e.call(t, echo); resp.Error != nil {
				t.Errorf("call after the slot freed: %+v", resp.Error)
			}
		})
	}

	t.Run("a bounded queue waits for a slot", func(t *testing.T) {
		t.Parallel()
		e := setup(t, config.Worker{MaxConcurrency: 1}, nil, pool.WithQueue(1, contractstest.WaitTimeout))
		held := e.send(t, slow, "", nil)
		contractstest.Eventually(t, "the slow call to hold the slot", func() bool { return strings.Contains(e.logs.String(), "upstream client connected") })
		queued := e.send(t, echo, "", nil)
		// The queue (depth 1) is full now: the next one is refused at once,
		// before the slow call ends.
		if resp := e.call(t, echo); workertest.Code(resp) != contracts.CodeOverloaded {
			t.Errorf("third call: %+v, want overloaded", resp.Error)
		}
		for _, p := range []pending{held, queued} {
			if resp := p.wait(t); resp.Error != nil {
				t.Errorf("%s: %+v", p.req.Tool, resp.Error)
			}
		}
	})

	t.Run("the wait is bounded", func(t *testing.T) {
		t.Parallel()
		e := setup(t, config.Worker{MaxConcurrency: 1}, nil, pool.WithQueue(1, 50*time.Millisecond))
		held := e.send(t, slow, "", nil)
		contractstest.Eventually(t, "the slow call to hold the slot", func() bool { return strings.Contains(e.logs.String(), "upstream client connected") })
		if resp := e.call(t, echo); workertest.Code(resp) != contracts.CodeOverloaded {
			t.Errorf("queued call: %+v, want overloaded after the wait", resp.Error)
		}
		if resp := held.wait(t); resp.Error != nil {
			t.Errorf("slow call: %+v", resp.Error)
		}
	})
}

func TestPool_StopDrains(t *testing.T) {
	t.Parallel()
	e := setup(t, config.Worker{DrainTimeout: config.Duration(contractstest.WaitTimeout)}, nil)
	slow := e.send(t, workertest.Call{Server: "demo", Tool: demoserver.ToolSlow, Args: `{"ms":800}`, Token: "Bearer u"}, "", nil)
	contractstest.Eventually(t, "the slow call to reach the upstream", func() bool { return workertest.UpstreamSawCall(e.demo) })

	stopped := make(chan error, 1)
	go func() { stopped <- e.pool.Stop(contractstest.Ctx(t)) }()

	// New requests find no worker once the subscriptions are drained (a
	// probe that still reaches it gets invalid_request at once).
	contractstest.Eventually(t, "no responders", func() bool {
		probe := &nats.Msg{Subject: contracts.CallSubject("demo"), Header: nats.Header{contracts.HeaderRequest: {`{"request_id":"probe"}`}}}
		_, err := e.nc.RequestMsg(probe, time.Second)
		return errors.Is(err, nats.ErrNoResponders)
	})
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) before the slow call finished", err)
	default:
	}
	if resp := slow.wait(t); resp.Error != nil {
		t.Errorf("the in-flight call failed: %+v", resp.Error)
	} else if got := workertest.Text(t, resp.Result); !strings.HasPrefix(got, "slept") {
		t.Errorf("slow result %q", got)
	}
	waitStopped(t, stopped)
}

func TestPool_StopCancelsAfterDrainTimeout(t *testing.T) {
	t.Parallel()
	e := setup(t, config.Worker{DrainTimeout: config.Duration(100 * time.Millisecond)}, nil)
	slow := e.send(t, workertest.Call{Server: "demo", Tool: demoserver.ToolSlow, Args: `{"ms":5000}`, Timeout: 8 * time.Second}, "", nil)
	contractstest.Eventually(t, "the slow call to reach the upstream", func() bool { return workertest.UpstreamSawCall(e.demo) })
	start := time.Now()
	if err := e.pool.Stop(contractstest.Ctx(t)); err == nil {
		t.Error("Stop returned nil although it cancelled a call")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Stop took %s", d)
	}
	if resp := slow.wait(t); resp.Error == nil || !resp.Error.Retryable {
		t.Errorf("cancelled call: %+v, want a retryable error", resp.Error)
	}
}

// TestPool_TokenNeverLeaks runs successful and failing calls and checks that
// the token crosses neither the bus in plaintext nor the logs.
func TestPool_TokenNeverLeaks(t *testing.T) {
	t.Parallel()
	e := setup(t, config.Worker{}, nil)
	const secret = "sk-user-9f8e7d6c5b4a"
	const token = "Bearer " + secret
	spy := e.nats.Connect(t)
	bus := contractstest.RecordAll(t, spy, "toolbus.>")
	inboxes := contractstest.RecordAll(t, spy, "_INBOX.>")

	calls := []struct {
		call workertest.Call
		want contracts.ErrorCode
	}{
		{workertest.Call{Server: "demo", Tool: demoserver.ToolEcho, Args: `{"text":"hello"}`, Token: token}, ""},
		{workertest.Call{Server: "demo", Tool: demoserver.ToolFail, Token: token}, ""},
		{workertest.Call{Server: "demo", Tool: "missing", Token: token}, contracts.CodeUnknownTool},
		{workertest.Call{Server: "demo", Tool: demoserver.ToolSlow, Args: `{"ms":2000}`, Token: token, Timeout: 50 * time.Millisecond}, contracts.CodeUpstreamTimeout},
		{workertest.Call{Server: "locked", Tool: demoserver.ToolEcho, Args: `{"text":"x"}`, Token: token}, contracts.CodeUpstreamUnauthorized},
		{workertest.Call{Server: "demo", Tool: demoserver.ToolEcho, Args: `{"text":"x"}`, Token: token, Expires: time.Now().Add(-time.Second)}, contracts.CodeSealInvalid},
	}
	var wg sync.WaitGroup
	for _, c := range calls {
		p := e.send(t, c.call, "", nil)
		wg.Go(func() {
			resp := p.wait(t)
			if workertest.Code(resp) != c.want {
				t.Errorf("%s: code %q (%+v), want %q", c.call.Tool, workertest.Code(resp), resp.Error, c.want)
			}
			if c.want == contracts.CodeUpstreamUnauthorized && !strings.Contains(resp.Error.WWWAuthenticate, "resource_metadata=") {
				t.Errorf("upstream_unauthorized without the challenge: %+v", resp.Error)
			}
		})
	}
	wg.Wait()
	bus.Flush(t)
	inboxes.Flush(t)

	// The upstream did receive it.
	var got bool
	for _, a := range e.demo.Recorder.Authorizations() {
		got = got || a == token
	}
	if !got {
		t.Fatal("the token never reached the upstream")
	}
	if bus.Count() < len(calls) || inboxes.Count() < len(calls) {
		t.Fatalf("recorded %d requests and %d replies", bus.Count(), inboxes.Count())
	}
	workertest.CheckTokenKept(t, e.logs, token, []string{secret}, bus, inboxes)
}

// TestPool_PanicAnswersInternal: an upstream answer that makes the handling
// of a call, a list or a relayed request panic gets its caller internal;
// the worker keeps serving, and the log names the panic, not the answer.
func TestPool_PanicAnswersInternal(t *testing.T) {
	t.Parallel()
	const marker = "answer-that-panics-7f3a"
	e := setup(t, config.Worker{}, nil, pool.WithUpstreamOptions(upstream.Options{Transport: workertest.PanicOnAnswer(marker)}))
	resp := e.call(t, workertest.Call{Server: "demo", Tool: demoserver.ToolEcho, Args: `{"text":"` + marker + `"}`, Token: "Bearer u"})
	if workertest.Code(resp) != contracts.CodeInternal {
		t.Fatalf("got %+v, want internal", resp.Error)
	}
	for i := range 3 {
		text := fmt.Sprintf("after the panic %d", i)
		resp := e.call(t, workertest.Call{Server: "demo", Tool: demoserver.ToolEcho, Args: `{"text":"` + text + `"}`, Token: "Bearer u"})
		if resp.Error != nil || workertest.Text(t, resp.Result) != text {
			t.Fatalf("call %d after the panic: %+v %s", i, resp.Error, resp.Result)
		}
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "panic recovered") || !strings.Contains(logs, "a value of type string") {
		t.Errorf("the panic is not logged:\n%s", logs)
	}
	if strings.Contains(logs, marker) {
		t.Errorf("the upstream's answer is in the logs:\n%s", logs)
	}
}

func TestNew_UnknownServer(t *testing.T) {
	t.Parallel()
	n := contractstest.StartNATS(t)
	cfg := workertest.Config(t, map[string]*config.Server{"demo": {URL: "http://127.0.0.1:1/mcp"}}, config.Worker{})
	_, err := pool.New(cfg, n.Connect(t), workertest.NewKeys(t).Opener, zerolog.Nop(), pool.WithServers("demo", "nope"))
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("New = %v, want an unknown server error", err)
	}
}

// 100 concurrent calls from 20 users through NATS: every reply carries its
// own caller's token, and the upstream sees only those tokens.
func TestPool_ConcurrentTokensNeverMix(t *testing.T) {
	t.Parallel()
	e := setup(t, config.Worker{}, nil)
	var wg sync.WaitGroup
	var pend []pending
	for i := range 100 {
		pend = append(pend, e.send(t, workertest.Call{Server: "demo", Tool: demoserver.ToolWhoami, Token: tokenOf(i)}, "", nil))
	}
	for i, p := range pend {
		wg.Go(func() {
			resp := p.wait(t)
			if resp.Error != nil {
				t.Errorf("call %d: %+v", i, resp.Error)
			} else if got := workertest.Text(t, resp.Result); got != tokenOf(i) {
				t.Errorf("call %d saw %q, want %q", i, got, tokenOf(i))
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, a := range e.demo.Recorder.Authorizations() {
		if !strings.HasPrefix(a, "Bearer user-") {
			t.Errorf("upstream saw %q", a)
		}
		seen[a] = true
	}
	if len(seen) != 20 {
		t.Errorf("upstream saw %d tokens, want 20", len(seen))
	}
}

func tokenOf(i int) string { return fmt.Sprintf("Bearer user-%02d", i%20) }
