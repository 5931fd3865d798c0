package pool_test

import (
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/worker/demoserver"
	"github.com/toolbus/toolbus/worker/internal/workertest"
	"github.com/toolbus/toolbus/worker/pool"
)

// request sends an empty request on subject and decodes the answer into v.
func request(t *testing.T, nc *nats.Conn, subject string, v any) {
	t.Helper()
	m, err := nc.Request(subject, nil, contractstest.WaitTimeout)
	if err != nil {
		t.Fatalf("%s: %v", subject, err)
	}
	if err := json.Unmarshal(m.Data, v); err != nil {
		t.Fatalf("%s: %s: %v", subject, m.Data, err)
	}
}

// statsData decodes the worker's data of one endpoint.
func statsData(t *testing.T, s micro.Stats, endpoint string) pool.EndpointStats {
	t.Helper()
	for _, e := range s.Endpoints {
		if e.Name == endpoint {
			var d pool.EndpointStats
			if err := json.Unmarshal(e.Data, &d); err != nil {
				t.Fatalf("%s data %s: %v", endpoint, e.Data, err)
			}
			return d
		}
	}
	t.Fatalf("no endpoint %s in %+v", endpoint, s.Endpoints)
	return pool.EndpointStats{}
}

// The worker is a NATS micro service: what `nats micro info|stats
// toolbus-worker` shows.
func TestPool_MicroService(t *testing.T) {
	t.Parallel()
	e := setup(t, config.Worker{MaxConcurrency: 32}, nil)
	if resp := e.call(t, workertest.Call{Server: "demo", Tool: demoserver.ToolEcho, Args: `{"text":"x"}`}); resp.Error != nil {
		t.Fatal(resp.Error)
	}

	var info micro.Info
	request(t, e.nc, "$SRV.INFO."+pool.ServiceName, &info)
	semver := regexp.MustCompile(`^\d+\.\d+\.\d+$`)
	if info.Name != pool.ServiceName || !semver.MatchString(info.Version) || info.Metadata["worker"] != "test-worker" ||
		info.Metadata["servers"] != "demo,locked,other" || info.Metadata["max_concurrency"] != "32" {
		t.Errorf("info %+v", info)
	}
	endpoints := map[string]micro.EndpointInfo{}
	for _, ep := range info.Endpoints {
		endpoints[ep.Name] = ep
	}
	for _, s := range []string{"demo", "locked", "other"} {
		for op, subject := range map[string]string{"call": contracts.CallSubject(s), "list": contracts.ListSubject(s)} {
			ep, ok := endpoints[op+"_"+s]
			if !ok || ep.Subject != subject || ep.QueueGroup != contracts.WorkerQueueGroup || ep.Metadata["server"] != s || ep.Metadata["op"] != op {
				t.Errorf("endpoint %s_%s: %+v", op, s, ep)
			}
		}
	}
	if ep := endpoints[pool.PingEndpoint]; ep.Subject != contracts.PingSubject || ep.QueueGroup != "" {
		t.Errorf("ping endpoint %+v (every worker answers pings: no queue group)", ep)
	}

	var stats micro.Stats
	request(t, e.nc, "$SRV.STATS."+pool.ServiceName, &stats)
	for _, ep := range stats.Endpoints {
		want := 0
		if ep.Name == "call_demo" {
			want = 1
		}
		if ep.Name != pool.PingEndpoint && ep.NumRequests != want {
			t.Errorf("%s served %d requests, want %d", ep.Name, ep.NumRequests, want)
		}
	}
	if d := statsData(t, stats, "call_demo"); d.Server != "demo" || d.Slots != 32 || d.Running != 0 || d.Breaker == nil || d.Breaker.State != "closed" {
		t.Errorf("call_demo data %+v", d)
	}
	if d := statsData(t, stats, pool.PingEndpoint); d.Slots != 32 {
		t.Errorf("ping data %+v", d)
	}

	var ping micro.Ping
	request(t, e.nc, "$SRV.PING."+pool.ServiceName, &ping)
	if ping.Name != pool.ServiceName || ping.ID != info.ID {
		t.Errorf("ping %+v", ping)
	}
}

// Without WithQueue, a server's wait queue is as deep as the calls the
// worker can run on it at once, which worker.max_concurrency may bound below
// the server's own limit; the rest is refused at once and counted.
func TestPool_DefaultQueueFollowsTheProcessLimit(t *testing.T) {
	t.Parallel()
	e := setup(t, config.Worker{MaxConcurrency: 1}, nil)
	held := e.send(t, workertest.Call{Server: "demo", Tool: demoserver.ToolSlow, Args: `{"ms":400}`}, "", nil)
	contractstest.Eventually(t, "the slow call to hold the slot", func() bool { return strings.Contains(e.logs.String(), "upstream client connected") })
	queued := e.send(t, workertest.Call{Server: "demo", Tool: demoserver.ToolEcho, Args: `{"text":"q"}`}, "", nil)
	start := time.Now()
	if resp := e.call(t, workertest.Call{Server: "demo", Tool: demoserver.ToolEcho, Args: `{"text":"x"}`}); workertest.Code(resp) != contracts.CodeOverloaded {
		t.Errorf("third call: %+v, want overloaded", resp.Error)
	}
	if d := time.Since(start); d > 300*time.Millisecond {
		t.Errorf("the refusal took %s: it waited", d)
	}
	for _, p := range []pending{held, queued} {
		if resp := p.wait(t); resp.Error != nil {
			t.Errorf("%s: %+v", p.req.Tool, resp.Error)
		}
	}
	var stats micro.Stats
	request(t, e.nc, "$SRV.STATS."+pool.ServiceName, &stats)
	if d := statsData(t, stats, "call_demo"); d.Overloaded != 1 {
		t.Errorf("overloaded count %d, want 1", d.Overloaded)
	}
}

// A request waiting for a slot waits at most half its budget, so that the
// worker answers it (overloaded) before the ingress gives up on it.
func TestPool_QueueWaitWithinTheBudget(t *testing.T) {
	t.Parallel()
	e := setup(t, config.Worker{MaxConcurrency: 1}, nil, pool.WithQueue(1, contractstest.WaitTimeout))
	held := e.send(t, workertest.Call{Server: "demo", Tool: demoserver.ToolSlow, Args: `{"ms":1500}`}, "", nil)
	contractstest.Eventually(t, "the slow call to hold the slot", func() bool { return strings.Contains(e.logs.String(), "upstream client connected") })
	start := time.Now()
	resp := e.call(t, workertest.Call{Server: "demo", Tool: demoserver.ToolEcho, Args: `{"text":"x"}`, Timeout: 400 * time.Millisecond})
	if workertest.Code(resp) != contracts.CodeOverloaded {
		t.Errorf("queued call: %+v, want overloaded", resp.Error)
	}
	if d := time.Since(start); d >= time.Second {
		t.Errorf("the queued call was answered after %s, beyond its 400ms budget", d)
	}
	if resp := held.wait(t); resp.Error != nil {
		t.Errorf("slow call: %+v", resp.Error)
	}
}

// A server that keeps failing opens its circuit: calls are refused at once
// without reaching it, until a probe after the cooldown finds it back.
func TestPool_CircuitBreaker(t *testing.T) {
	t.Parallel()
	up := workertest.StartUpstream(t, demoserver.Options{})
	e := setup(t, config.Worker{}, func(s map[string]*config.Server) { s["flaky"] = &config.Server{URL: up.URL} },
		pool.WithBreaker(pool.BreakerConfig{Failures: 2, Cooldown: 200 * time.Millisecond, Window: time.Minute, MinCallers: 1}))
	echo := workertest.Call{Server: "flaky", Tool: demoserver.ToolEcho, Args: `{"text":"x"}`}
	other := workertest.Call{Server: "demo", Tool: demoserver.ToolEcho, Args: `{"text":"x"}`}
	up.FailNext(3)

	for i := range 2 {
		if resp := e.call(t, echo); workertest.Code(resp) != contracts.CodeUpstreamError || strings.Contains(resp.Error.Message, "circuit") {
			t.Fatalf("failure %d: %+v", i+1, resp.Error)
		}
	}
	resp := e.call(t, echo)
	if workertest.Code(resp) != contracts.CodeUpstreamError || !strings.HasPrefix(resp.Error.Message, "circuit open") || !resp.Error.Retryable {
		t.Fatalf("with the circuit open: %+v", resp.Error)
	}
	if got := up.Stats().Requests; got != 2 {
		t.Fatalf("the upstream got %d calls, want 2", got)
	}
	// Other servers are not affected.
	if resp := e.call(t, other); resp.Error != nil {
		t.Fatalf("another server: %+v", resp.Error)
	}

	// untilProbe calls until the circuit lets one through (bounded).
	untilProbe := func() *contracts.CallResponse {
		t.Helper()
		var resp *contracts.CallResponse
		contractstest.Eventually(t, "the cooldown to end", func() bool {
			resp = e.call(t, echo)
			return resp.Error == nil || !strings.HasPrefix(resp.Error.Message, "circuit open")
		})
		return resp
	}
	// The first probe fails (the upstream still fails once): open again.
	if resp := untilProbe(); workertest.Code(resp) != contracts.CodeUpstreamError {
		t.Fatalf("first probe: %+v", resp.Error)
	}
	if resp := e.call(t, echo); resp.Error == nil || !strings.HasPrefix(resp.Error.Message, "circuit open") {
		t.Fatalf("after a failed probe: %+v", resp.Error)
	}
	// The next probe succeeds: closed.
	if resp := untilProbe(); resp.Error != nil {
		t.Fatalf("second probe: %+v", resp.Error)
	}
	for range 3 {
		if resp := e.call(t, echo); resp.Error != nil {
			t.Fatalf("after the circuit closed: %+v", resp.Error)
		}
	}
	if got := up.Stats().Requests; got != 2+2+3 {
		t.Errorf("the upstream got %d calls, want 7", got)
	}
	logs := e.logs.String()
	if strings.Count(logs, "circuit opened") != 2 || strings.Count(logs, "circuit closed") != 1 {
		t.Errorf("circuit transitions logged: %d opened, %d closed", strings.Count(logs, "circuit opened"), strings.Count(logs, "circuit closed"))
	}
}

// With a connection of its own for the service, Stop knows when the
// endpoints have handed on their last request: the connection has no
// subscription left. Running calls finish; pings stop at once.
func TestPool_StopDrainsTheServiceConn(t *testing.T) {
	t.Parallel()
	n := contractstest.StartNATS(t)
	client := n.Connect(t)
	svcConn := n.Connect(t)
	keys := workertest.NewKeys(t)
	demo := workertest.StartDemo(t, demoserver.Options{}, demoserver.TransportHTTP)
	cfg := workertest.Config(t, map[string]*config.Server{"demo": {URL: demo.URL}}, config.Worker{DrainTimeout: config.Duration(contractstest.WaitTimeout)})
	logs := &contractstest.LogBuffer{}
	p, err := pool.New(cfg, n.Connect(t), keys.Opener, logs.Logger("worker"), pool.WithServiceConn(svcConn), pool.WithoutJobs())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(contractstest.Ctx(t)); err != nil {
		t.Fatal(err)
	}
	if svcConn.NumSubscriptions() == 0 {
		t.Fatal("the service subscribed nothing on its connection")
	}

	inbox := nats.NewInbox()
	sub, err := client.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	req := keys.Request(t, workertest.Call{Server: "demo", Tool: demoserver.ToolSlow, Args: `{"ms":600}`, Token: "Bearer u"}, inbox)
	if err := client.PublishMsg(workertest.Msg(t, contracts.CallSubject("demo"), inbox, req)); err != nil {
		t.Fatal(err)
	}
	contractstest.Eventually(t, "the slow call to reach the upstream", func() bool { return workertest.UpstreamSawCall(demo) })

	stopped := make(chan error, 1)
	go func() { stopped <- p.Stop(contractstest.Ctx(t)) }()
	contractstest.Eventually(t, "pings and calls to find no responder", func() bool {
		_, perr := client.Request(contracts.PingSubject, nil, time.Second)
		probe := &nats.Msg{Subject: contracts.CallSubject("demo"), Header: nats.Header{contracts.HeaderRequest: {`{"request_id":"probe"}`}}}
		_, cerr := client.RequestMsg(probe, time.Second)
		return errors.Is(perr, nats.ErrNoResponders) && errors.Is(cerr, nats.ErrNoResponders)
	})
	m, err := sub.NextMsgWithContext(contractstest.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := contracts.DecodeCallResponse(workertest.ReplyOf(m)); err != nil || resp.Error != nil {
		t.Fatalf("the in-flight call: %s %v", m.Data, err)
	}
	waitStopped(t, stopped)
	if n := svcConn.NumSubscriptions(); n != 0 {
		t.Errorf("the service connection still has %d subscriptions", n)
	}
}

// One key's own doing cannot open a server's circuit for the others: calls
// that time out because they asked for less than the server's timeout, and
// calls whose arguments the server cannot decode (1e400 is valid JSON but no
// float64: invalid_request, not retryable), say nothing about the server's
// health. An upstream that fails for several keys still opens it.
func TestPool_BreakerOnlyTheUpstreamTrips(t *testing.T) {
	t.Parallel()
	up := workertest.StartUpstream(t, demoserver.Options{})
	e := setup(t, config.Worker{}, func(s map[string]*config.Server) { s["flaky"] = &config.Server{URL: up.URL} },
		pool.WithBreaker(pool.BreakerConfig{Failures: 5, Cooldown: time.Minute, Window: time.Minute, MinCallers: 2}))
	for i := range 5 {
		resp := e.call(t, workertest.Call{Server: "flaky", KeyID: "a", Tool: demoserver.ToolSlow, Args: `{"ms":2000}`, Timeout: 50 * time.Millisecond})
		if workertest.Code(resp) != contracts.CodeUpstreamTimeout {
			t.Fatalf("short-timeout call %d: %+v", i+1, resp.Error)
		}
	}
	for i := range 6 {
		resp := e.call(t, workertest.Call{Server: "flaky", KeyID: "a", Tool: demoserver.ToolEcho, Args: `{"text":"x","n":1e400}`})
		if workertest.Code(resp) != contracts.CodeInvalidRequest || resp.Error.Retryable {
			t.Fatalf("1e400 call %d: %+v, want invalid_request, not retryable", i+1, resp.Error)
		}
	}
	for i := range 3 {
		if resp := e.call(t, workertest.Call{Server: "flaky", KeyID: "b", Tool: demoserver.ToolEcho, Args: `{"text":"x"}`}); resp.Error != nil {
			t.Fatalf("key b's call %d: %+v", i+1, resp.Error)
		}
	}

	// The upstream fails for everyone: keys a and b both see it fail.
	up.FailNext(5)
	for i := range 5 {
		resp := e.call(t, workertest.Call{Server: "flaky", KeyID: []string{"a", "b"}[i%2], Tool: demoserver.ToolEcho, Args: `{"text":"x"}`})
		if workertest.Code(resp) != contracts.CodeUpstreamError || strings.Contains(resp.Error.Message, "circuit") {
			t.Fatalf("failure %d: %+v", i+1, resp.Error)
		}
	}
	resp := e.call(t, workertest.Call{Server: "flaky", KeyID: "c", Tool: demoserver.ToolEcho, Args: `{"text":"x"}`})
	if workertest.Code(resp) != contracts.CodeUpstreamError || !strings.HasPrefix(resp.Error.Message, "circuit open") {
		t.Fatalf("after failures from two keys: %+v, want circuit open", resp.Error)
	}
}
