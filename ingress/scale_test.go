package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/ingress/internal/clustertest"
	"github.com/toolbus/toolbus/worker/demoserver"
)

// The scale and failure tests of the production shape: the ingress and
// worker binaries as separate processes on loopback, against NATS (one
// server or a 3-node cluster, in this process) and demo MCP servers (in
// this process too, so the tests can count what reaches them). Every wait
// is bounded; each scenario takes seconds.

// scaleKey is the gateway key of the scale tests: the master key, which may
// also read /admin/workers.
const scaleKey = "sk-scale-master"

// scaleWait bounds the waits of the scale tests (readiness, restarts,
// jobs).
const scaleWait = 60 * time.Second

// scaleShared is built once for every scenario of TestScale.
type scaleShared struct {
	ingressBin, workerBin string
	pub, priv             string
}

// TestScale runs the scale-out and failure scenarios one after the other
// (they would compete for CPU side by side): load spread over workers,
// rolling restarts, a killed worker, the loss of a cluster node, overload,
// a dead upstream beside a healthy one, and a NATS restart.
func TestScale(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries under load")
	}
	var sh scaleShared
	sh.ingressBin, sh.workerBin = buildBinaries(t)
	sh.pub, sh.priv = keygen(t, sh.workerBin)

	t.Run("calls spread over workers", func(t *testing.T) { testCallsSpread(t, &sh) })
	t.Run("rolling restart loses no call", func(t *testing.T) { testRollingRestart(t, &sh) })
	t.Run("killed worker", func(t *testing.T) { testKilledWorker(t, &sh) })
	t.Run("cluster node lost", func(t *testing.T) { testClusterNodeLost(t, &sh) })
	t.Run("overload answers fast", func(t *testing.T) { testOverload(t, &sh) })
	t.Run("dead upstream is contained", func(t *testing.T) { testUpstreamContained(t, &sh) })
	t.Run("NATS restart", func(t *testing.T) { testNATSRestart(t, &sh) })
}

// scaleEnv is one scenario's system: NATS, a configuration, the worker
// processes and the ingress process.
type scaleEnv struct {
	t       *testing.T
	sh      *scaleShared
	nats    *clustertest.Cluster
	cfgPath string
	url     string // the ingress
	ingress *contractstest.Process
	workers []*contractstest.Process
}

// startUpstream runs a demo MCP server in this process, whose tool calls
// are counted, until the test ends.
func startUpstream(t *testing.T) (*demoserver.Running, *demoserver.Calls) {
	t.Helper()
	calls := &demoserver.Calls{}
	run, err := demoserver.Start(context.Background(), demoserver.Options{Calls: calls}, demoserver.TransportHTTP)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = run.Close(ctx)
	})
	return run, calls
}

// newScaleEnv writes the configuration: the master key, servers (YAML
// entries under mcp_servers, indented by four spaces) and extra sections.
func newScaleEnv(t *testing.T, sh *scaleShared, nc *clustertest.Cluster, servers, extra string) *scaleEnv {
	t.Helper()
	cfg := "general_settings:\n  master_key: " + scaleKey + "\nmcp_servers:\n" + servers + extra
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return &scaleEnv{t: t, sh: sh, nats: nc, cfgPath: path}
}

// startWorker starts one more worker process.
func (e *scaleEnv) startWorker(args ...string) *contractstest.Process {
	e.t.Helper()
	env := []string{"TOOLBUS_NATS_URL=" + e.nats.URLs(), "TOOLBUS_SEAL_PRIVATE_KEYS=" + e.sh.priv}
	w := contractstest.StartProcess(e.t, e.sh.workerBin, env, append([]string{"--config", e.cfgPath}, args...)...)
	e.workers = append(e.workers, w)
	return w
}

// startIngress starts the ingress process and waits until /readyz counts
// workers workers.
func (e *scaleEnv) startIngress(workers int) {
	e.t.Helper()
	env := []string{"TOOLBUS_NATS_URL=" + e.nats.URLs(), "TOOLBUS_SEAL_PUBLIC_KEYS=" + e.sh.pub, "TOOLBUS_LISTEN=127.0.0.1:0"}
	e.ingress = contractstest.StartProcess(e.t, e.sh.ingressBin, env, "--config", e.cfgPath)
	e.url = waitForURL(e.t, e.ingress.Stdout, e.ingress.Stderr)
	e.waitWorkers(workers)
}

// waitWorkers waits until /readyz reports exactly n workers.
func (e *scaleEnv) waitWorkers(n int) {
	e.t.Helper()
	deadline := time.Now().Add(scaleWait)
	for {
		status, body := e.get("/readyz", "")
		var r struct{ Workers int }
		_ = json.Unmarshal(body, &r)
		if status == http.StatusOK && r.Workers == n {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("/readyz never reported %d workers: %d %s", n, status, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// scaleClient keeps enough idle connections for the tests' concurrency.
var scaleClient = &http.Client{
	Timeout: 60 * time.Second,
	Transport: &http.Transport{
		MaxIdleConns: 512, MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	},
}

func (e *scaleEnv) get(path, key string) (int, []byte) {
	req, _ := http.NewRequest(http.MethodGet, e.url+path, nil)
	if key != "" {
		req.Header.Set("x-litellm-key", key)
	}
	resp, err := scaleClient.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// result is one HTTP call's outcome.
type result struct {
	start      time.Time
	elapsed    time.Duration
	status     int
	code       string // error.code; empty on success
	message    string
	retryable  bool
	retryAfter string
	text       string // the first text content of a result
	err        error  // transport failure
}

func (r result) ok() bool { return r.err == nil && r.status == http.StatusOK && r.code == "" }

func (r result) String() string {
	if r.err != nil {
		return "transport error: " + r.err.Error()
	}
	return fmt.Sprintf("%d %s %q (retryable %v, %s)", r.status, r.code, r.message, r.retryable, r.elapsed.Round(time.Millisecond))
}

// post sends body to path with the master key and a user token.
func (e *scaleEnv) post(path, body string) result {
	r := result{start: time.Now()}
	req, _ := http.NewRequest(http.MethodPost, e.url+path, strings.NewReader(body))
	req.Header.Set("x-litellm-key", scaleKey)
	req.Header.Set("Authorization", "Bearer scale-user")
	req.Header.Set("Content-Type", "application/json")
	resp, err := scaleClient.Do(req)
	if err != nil {
		r.err, r.elapsed = err, time.Since(r.start)
		return r
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	r.elapsed, r.status, r.err = time.Since(r.start), resp.StatusCode, err
	r.retryAfter = resp.Header.Get("Retry-After")
	var b struct {
		Error *struct {
			Code      string `json:"code"`
			Message   string `json:"message"`
			Retryable bool   `json:"retryable"`
		} `json:"error"`
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
		ID string `json:"id"`
	}
	if json.Unmarshal(data, &b) != nil {
		r.code, r.message = "unreadable", string(data)
		return r
	}
	if b.Error != nil {
		r.code, r.message, r.retryable = b.Error.Code, b.Error.Message, b.Error.Retryable
	}
	if len(b.Content) > 0 {
		r.text = b.Content[0].Text
	}
	if b.ID != "" {
		r.text = b.ID
	}
	return r
}

// call calls tool (with JSON arguments) on the demo server.
func (e *scaleEnv) call(server, tool, args string) result {
	return e.post("/mcp/tools/call", fmt.Sprintf(`{"name":%q,"arguments":%s}`, server+"-"+tool, args))
}

// load runs n calls at concurrency c; call(i) makes call i.
func load(n, c int, call func(i int) result) []result {
	out := make([]result, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range c {
		wg.Go(func() {
			for i := range next {
				out[i] = call(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return out
}

// steadyLoad is calls made at a fixed concurrency until stop.
type steadyLoad struct {
	mu   sync.Mutex
	out  []result
	seq  int
	done chan struct{}
	wg   sync.WaitGroup
}

// steady starts calls at concurrency c; call(i) makes call i.
func steady(c int, call func(i int) result) *steadyLoad {
	l := &steadyLoad{done: make(chan struct{})}
	for range c {
		l.wg.Go(func() {
			for {
				select {
				case <-l.done:
					return
				default:
				}
				l.mu.Lock()
				i := l.seq
				l.seq++
				l.mu.Unlock()
				r := call(i)
				l.mu.Lock()
				l.out = append(l.out, r)
				l.mu.Unlock()
			}
		})
	}
	return l
}

// count is how many calls have ended.
func (l *steadyLoad) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.out)
}

// waitMore waits (bounded) until n more calls than now have ended.
func (l *steadyLoad) waitMore(t *testing.T, n int) {
	t.Helper()
	want := l.count() + n
	deadline := time.Now().Add(scaleWait)
	for l.count() < want {
		if time.Now().After(deadline) {
			t.Fatalf("the load made %d calls, want %d", l.count(), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends the load and returns every outcome.
func (l *steadyLoad) stop() []result {
	close(l.done)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.out
}

// failures returns the results that are not successes.
func failures(rs []result) []result {
	var bad []result
	for _, r := range rs {
		if !r.ok() {
			bad = append(bad, r)
		}
	}
	return bad
}

// adminWorkers is GET /admin/workers.
type adminWorkers struct {
	Count   int            `json:"count"`
	Servers map[string]int `json:"servers"`
	Workers []struct {
		Name      string `json:"name"`
		Endpoints []struct {
			Name       string `json:"name"`
			Subject    string `json:"subject"`
			QueueGroup string `json:"queue_group"`
			Requests   int    `json:"requests"`
			Data       struct {
				Running int `json:"running"`
			} `json:"data"`
		} `json:"endpoints"`
	} `json:"workers"`
}

func (e *scaleEnv) admin() adminWorkers {
	e.t.Helper()
	status, body := e.get("/admin/workers", scaleKey)
	var a adminWorkers
	if status != http.StatusOK || json.Unmarshal(body, &a) != nil {
		e.t.Fatalf("/admin/workers: %d %s", status, body)
	}
	return a
}

// byName returns the worker process whose default name (host-pid) is name.
func (e *scaleEnv) byName(name string) *contractstest.Process {
	for _, w := range e.workers {
		if strings.HasSuffix(name, fmt.Sprintf("-%d", w.Pid())) {
			return w
		}
	}
	return nil
}

// submit posts an async job and returns its id, or "" when it was refused.
func (e *scaleEnv) submit(args string) (string, result) {
	r := e.post("/v1/calls", `{"name":"demo-slow","arguments":`+args+`}`)
	if r.status != http.StatusAccepted {
		return "", r
	}
	return r.text, r
}

// waitJobs long-polls every job until it is terminal and returns how many
// did not succeed.
func (e *scaleEnv) waitJobs(ids []string) int {
	e.t.Helper()
	bad := 0
	deadline := time.Now().Add(scaleWait)
	for _, id := range ids {
		for {
			req, _ := http.NewRequest(http.MethodGet, e.url+"/v1/calls/"+id+"?wait=10s", nil)
			req.Header.Set("x-litellm-key", scaleKey)
			req.Header.Set("Authorization", "Bearer scale-user")
			var job struct {
				Status string `json:"status"`
				Error  any    `json:"error"`
			}
			resp, err := scaleClient.Do(req)
			if err == nil {
				err = json.NewDecoder(resp.Body).Decode(&job)
				resp.Body.Close()
			}
			if err == nil && (job.Status == "succeeded" || job.Status == "failed" || job.Status == "cancelled" || job.Status == "expired") {
				if job.Status != "succeeded" {
					e.t.Errorf("job %s: %s %v", id, job.Status, job.Error)
					bad++
				}
				break
			}
			if time.Now().After(deadline) {
				e.t.Fatalf("job %s not finished after %s: %s %v", id, scaleWait, job.Status, err)
			}
			if err != nil {
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	return bad
}

// checkNoToken fails if a process logged the user token.
func (e *scaleEnv) checkNoToken() {
	e.t.Helper()
	for _, p := range append([]*contractstest.Process{e.ingress}, e.workers...) {
		if p != nil && (strings.Contains(p.Stderr.String(), "scale-user") || strings.Contains(p.Stdout.String(), "scale-user")) {
			e.t.Errorf("a process logged the user token")
		}
	}
}

// 2,000 calls at concurrency 64 through one ingress and three workers all
// succeed, and every worker serves a share (counted by the workers' micro
// service stats, through /admin/workers).
func testCallsSpread(t *testing.T, sh *scaleShared) {
	start := time.Now()
	up, _ := startUpstream(t)
	e := newScaleEnv(t, sh, clustertest.Start(t, 1), "  demo:\n    url: "+up.URL+"\n", "")
	for range 3 {
		e.startWorker()
	}
	e.startIngress(3)

	const n, c = 2000, 64
	rs := load(n, c, func(i int) result { return e.call("demo", "echo", fmt.Sprintf(`{"text":"call %d"}`, i)) })
	for i, r := range rs {
		if !r.ok() || r.text != fmt.Sprintf("call %d", i) {
			t.Fatalf("call %d: %s %q", i, r, r.text)
		}
	}

	a := e.admin()
	if a.Count != 3 || a.Servers["demo"] != 3 || len(a.Workers) != 3 {
		t.Fatalf("/admin/workers: %+v", a)
	}
	total := 0
	for _, w := range a.Workers {
		served := -1
		for _, ep := range w.Endpoints {
			if ep.Name == "call_demo" {
				served = ep.Requests
				if ep.QueueGroup != "toolbus-workers" || ep.Subject != "toolbus.v2.call.demo" {
					t.Errorf("endpoint %+v", ep)
				}
			}
		}
		if served < n/10 {
			t.Errorf("worker %s served %d of %d calls", w.Name, served, n)
		}
		total += served
	}
	if total < n {
		t.Errorf("the workers served %d calls, want at least %d", total, n)
	}
	e.checkNoToken()
	t.Logf("%d calls at concurrency %d over 3 workers in %s", n, c, time.Since(start).Round(time.Millisecond))
}

// Under steady load (sync calls and async jobs), each of three workers in
// turn gets SIGTERM and a replacement starts: no call fails, every job
// succeeds.
func testRollingRestart(t *testing.T, sh *scaleShared) {
	up, _ := startUpstream(t)
	e := newScaleEnv(t, sh, clustertest.Start(t, 1), "  demo:\n    url: "+up.URL+"\n", "worker:\n  drain_timeout: 20s\n")
	for range 3 {
		e.startWorker().WaitLog(t, "consuming jobs", scaleWait)
	}
	e.startIngress(3)

	calls := steady(8, func(i int) result {
		if i%4 == 0 {
			return e.call("demo", "slow", `{"ms":150}`)
		}
		return e.call("demo", "echo", fmt.Sprintf(`{"text":"call %d"}`, i))
	})
	var jobs []string
	var slowestStop, slowestStart time.Duration
	for round := range 3 {
		for range 4 {
			id, r := e.submit(`{"ms":300}`)
			if id == "" {
				t.Errorf("submit: %s", r)
				continue
			}
			jobs = append(jobs, id)
		}
		old := e.workers[round]
		t0 := time.Now()
		old.Stop() // SIGTERM, then waits for the exit
		slowestStop = max(slowestStop, time.Since(t0))
		if !strings.Contains(old.Stderr.String(), `"stopped"`) {
			t.Errorf("worker %d did not stop cleanly:\n%s", round, old.Stderr)
		}
		t0 = time.Now()
		e.startWorker().WaitLog(t, "consuming jobs", scaleWait)
		e.waitWorkers(3)
		slowestStart = max(slowestStart, time.Since(t0))
		calls.waitMore(t, 50) // the new worker takes its share
	}
	rs := calls.stop()
	if bad := failures(rs); len(bad) > 0 {
		t.Errorf("%d of %d calls failed during the rolling restart; first: %s", len(bad), len(rs), bad[0])
	}
	if len(rs) < 100 {
		t.Errorf("only %d calls ran during the restart", len(rs))
	}
	t0 := time.Now()
	if bad := e.waitJobs(jobs); bad > 0 {
		t.Errorf("%d of %d jobs did not succeed", bad, len(jobs))
	}
	t.Logf("%d calls and %d jobs, 3 workers restarted (slowest stop %s, slowest replacement %s), %d failed calls; jobs done %s after the load",
		len(rs), len(jobs), slowestStop.Round(time.Millisecond), slowestStart.Round(time.Millisecond), len(failures(rs)), time.Since(t0).Round(time.Millisecond))
}

// A worker is killed (SIGKILL) while it runs sync calls and jobs: its sync
// calls fail with a retryable error within their timeout (plus the
// ingress's grace), never later; the other workers' calls succeed; its jobs
// are delivered again and succeed.
func testKilledWorker(t *testing.T, sh *scaleShared) {
	up, calls := startUpstream(t)
	e := newScaleEnv(t, sh, clustertest.Start(t, 1), "  demo:\n    url: "+up.URL+"\n",
		"jobs:\n  ack_wait: 1s\n  backoff: [100ms]\n")
	for range 3 {
		e.startWorker().WaitLog(t, "consuming jobs", scaleWait)
	}
	e.startIngress(3)

	const timeout = 4 * time.Second
	const nCalls, nJobs = 12, 6
	var jobs []string
	for range nJobs {
		id, r := e.submit(`{"ms":2500}`)
		if id == "" {
			t.Fatalf("submit: %s", r)
		}
		jobs = append(jobs, id)
	}
	results := make(chan result, nCalls)
	for range nCalls {
		go func() {
			results <- e.post("/mcp/tools/call", fmt.Sprintf(`{"name":"demo-slow","arguments":{"ms":2500},"timeout_seconds":%d}`, int(timeout.Seconds())))
		}()
	}
	deadline := time.Now().Add(scaleWait)
	for calls.Stats().Running < nCalls+nJobs {
		if time.Now().After(deadline) {
			t.Fatalf("the upstream runs %d calls, want %d", calls.Stats().Running, nCalls+nJobs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Kill the worker running the most sync calls (every call it has
	// received runs now).
	var victim *contractstest.Process
	most := 0
	for _, w := range e.admin().Workers {
		for _, ep := range w.Endpoints {
			if ep.Name == "call_demo" && ep.Requests > most {
				most, victim = ep.Requests, e.byName(w.Name)
			}
		}
	}
	if victim == nil {
		t.Fatal("no worker runs a call")
	}
	killed := time.Now()
	victim.Kill(t)

	var failed []result
	for range nCalls {
		r := <-results
		if r.ok() {
			continue
		}
		failed = append(failed, r)
		if !r.retryable || (r.code != "timeout" && r.code != "upstream_timeout") || r.retryAfter == "" {
			t.Errorf("a call on the killed worker: %s, want a retryable timeout", r)
		}
		if r.elapsed > timeout+5*time.Second {
			t.Errorf("a call on the killed worker took %s (timeout %s)", r.elapsed, timeout)
		}
	}
	if len(failed) != most {
		t.Errorf("%d calls failed; the killed worker ran %d", len(failed), most)
	}
	if bad := e.waitJobs(jobs); bad > 0 {
		t.Errorf("%d of %d jobs did not succeed after the kill", bad, nJobs)
	}
	// The pool serves on without it.
	if r := e.call("demo", "echo", `{"text":"after"}`); !r.ok() {
		t.Errorf("call after the kill: %s", r)
	}
	t.Logf("killed a worker running %d calls: %d failed with timeouts after %s; %d jobs succeeded",
		most, len(failed), time.Since(killed).Round(time.Millisecond), nJobs)
}

// On a 3-node cluster with the jobs stream and buckets replicated 3 times,
// the node the ingress is connected to is stopped under load: calls
// succeed again once the clients have reconnected, and every accepted job
// succeeds.
func testClusterNodeLost(t *testing.T, sh *scaleShared) {
	up, _ := startUpstream(t)
	cluster := clustertest.Start(t, 3)
	e := newScaleEnv(t, sh, cluster, "  demo:\n    url: "+up.URL+"\n",
		"jobs:\n  replicas: 3\n  ack_wait: 2s\n  backoff: [200ms]\n")
	for range 3 {
		e.startWorker().WaitLog(t, "consuming jobs", scaleWait)
	}
	e.startIngress(3)

	var jobs []string
	// submit submits n jobs; with insist, each until it is accepted.
	submit := func(n int, insist bool) {
		deadline := time.Now().Add(scaleWait)
		for range n {
			for {
				id, r := e.submit(`{"ms":200}`)
				if id != "" {
					jobs = append(jobs, id)
					break
				}
				if !insist {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("submit: %s", r)
				}
			}
		}
	}
	// A call in flight through the node that stops is lost with it: its
	// caller gets a retryable 504 at the end of its timeout, short here.
	calls := steady(8, func(i int) result {
		return e.post("/mcp/tools/call", fmt.Sprintf(`{"name":"demo-echo","arguments":{"text":"call %d"},"timeout_seconds":3}`, i))
	})
	submit(10, true)
	node := cluster.NodeOf("toolbus-ingress")
	if node < 0 {
		t.Fatal("the ingress is connected to no node")
	}
	stopped := time.Now()
	cluster.Stop(node)
	// Calls succeed again after the reconnect: 50 in a row.
	deadline := time.Now().Add(scaleWait)
	for streak := 0; streak < 50; {
		if r := e.post("/mcp/tools/call", `{"name":"demo-echo","arguments":{"text":"probe"},"timeout_seconds":3}`); r.ok() {
			streak++
		} else {
			streak = 0
			if time.Now().After(deadline) {
				t.Fatalf("calls still fail %s after the node stopped: %s", scaleWait, r)
			}
		}
	}
	recovered := time.Since(stopped)
	submit(10, false) // JetStream may still be electing leaders: some may be refused (503), none lost
	submit(10, true)
	jobsBack := time.Since(stopped)
	settled := time.Now()
	calls.waitMore(t, 200) // the steady load runs on the reduced cluster
	rs := calls.stop()
	t0 := time.Now()
	var during, after int
	for _, r := range failures(rs) {
		if r.start.Before(settled) {
			during++
			if !r.retryable {
				t.Errorf("a call failed with a permanent error during the failover: %s", r)
			}
		} else {
			after++
		}
	}
	if after > 0 {
		t.Errorf("%d calls failed after the clients had reconnected", after)
	}
	if len(jobs) < 20 {
		t.Errorf("only %d of 30 jobs were accepted", len(jobs))
	}
	if bad := e.waitJobs(jobs); bad > 0 {
		t.Errorf("%d of %d jobs did not succeed", bad, len(jobs))
	}
	t.Logf("node %d stopped: calls succeed again after %s (%d of %d failed during the failover), jobs are accepted again after %s; %d jobs succeeded, %s after the load",
		node, recovered.Round(time.Millisecond), during, len(rs), jobsBack.Round(time.Millisecond), len(jobs), time.Since(t0).Round(time.Millisecond))
	// A job whose outcome write was in flight to the lost node waits out
	// the jobs package's write budget (30 s) before it retries, and a
	// stopping worker waits for it: end the workers without waiting.
	for _, w := range e.workers {
		w.Kill(t)
	}
}

// Each worker runs at most 4 calls of the server at once; 200 slow calls at
// once get either a result or, fast, 503 overloaded with Retry-After; the
// upstream never sees more than the workers' limit; after the burst calls
// succeed again.
func testOverload(t *testing.T, sh *scaleShared) {
	up, calls := startUpstream(t)
	e := newScaleEnv(t, sh, clustertest.Start(t, 1), "  demo:\n    url: "+up.URL+"\n    max_concurrency: 4\n", "")
	for range 3 {
		e.startWorker()
	}
	e.startIngress(3)

	const n = 200
	const slow = 2 * time.Second
	rs := load(n, n, func(int) result { return e.call("demo", "slow", fmt.Sprintf(`{"ms":%d}`, slow.Milliseconds())) })
	succeeded, refused := 0, 0
	for _, r := range rs {
		switch {
		case r.ok():
			succeeded++
		case r.status == http.StatusServiceUnavailable && r.code == "overloaded":
			refused++
			if r.retryAfter == "" || !r.retryable {
				t.Errorf("overloaded answer without Retry-After or retryable: %s", r)
			}
			if r.elapsed >= slow/2 {
				t.Errorf("an overloaded answer took %s: it queued", r.elapsed)
			}
		default:
			t.Errorf("call: %s", r)
		}
	}
	if refused < n/2 || succeeded < 12 {
		t.Errorf("%d succeeded and %d were refused, want at least 12 and %d", succeeded, refused, n/2)
	}
	if got := calls.Stats().MaxRunning; got > 12 {
		t.Errorf("the upstream ran %d calls at once, more than 3 workers × 4", got)
	}
	for i := range 20 {
		if r := e.call("demo", "echo", fmt.Sprintf(`{"text":"after %d"}`, i)); !r.ok() {
			t.Errorf("call after the burst: %s", r)
		}
	}
	t.Logf("%d calls at once: %d succeeded, %d refused fast; the upstream ran at most %d at once",
		n, succeeded, refused, calls.Stats().MaxRunning)
}

// One MCP server is dead (connection refused) and one hangs (accepts and
// never answers) while a third is healthy: calls to the healthy one all
// succeed, none slowed down by the others; calls to the others fail within
// their timeout, then at once when their circuit opens.
func testUpstreamContained(t *testing.T, sh *scaleShared) {
	up, _ := startUpstream(t)
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + dead.Addr().String() + "/mcp"
	dead.Close() // nothing listens there now
	hung := hangingServer(t)
	servers := "  demo:\n    url: " + up.URL + "\n" +
		"  dead:\n    url: " + deadURL + "\n    timeout: 1s\n    max_concurrency: 4\n" +
		"  hung:\n    url: " + hung + "\n    timeout: 2s\n    max_concurrency: 4\n"
	// One gateway key: its failures alone may open a circuit.
	e := newScaleEnv(t, sh, clustertest.Start(t, 1), servers, "worker:\n  breaker:\n    min_callers: 1\n")
	for range 2 {
		e.startWorker()
	}
	e.startIngress(2)

	dying := steady(8, func(int) result { return e.call("dead", "echo", `{"text":"x"}`) })
	hanging := steady(8, func(int) result { return e.call("hung", "echo", `{"text":"x"}`) })
	healthy := load(300, 4, func(i int) result { return e.call("demo", "echo", fmt.Sprintf(`{"text":"h%d"}`, i)) })
	var slowest time.Duration
	for _, r := range healthy {
		if !r.ok() {
			t.Errorf("a call to the healthy server failed: %s", r)
		}
		slowest = max(slowest, r.elapsed)
	}
	// No healthy call waited for the hanging server (whose calls take their
	// 2s timeout).
	if slowest >= 2*time.Second {
		t.Errorf("the slowest call to the healthy server took %s", slowest)
	}

	// The failing servers' circuits open (on both workers), after which
	// their calls are refused at once.
	for _, server := range []string{"dead", "hung"} {
		deadline := time.Now().Add(scaleWait)
		for open := 0; open < 10; {
			r := e.call(server, "echo", `{"text":"x"}`)
			switch {
			case r.code == "upstream_error" && strings.Contains(r.message, "circuit open"):
				open++
				if r.elapsed >= 2*time.Second || r.retryAfter == "" {
					t.Errorf("%s: a refusal with the circuit open waited: %s", server, r)
				}
			case r.code == "upstream_error" || r.code == "upstream_timeout" || r.code == "overloaded":
				open = 0
			default:
				t.Fatalf("%s: %s", server, r)
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the circuit never opened", server)
			}
		}
	}
	for name, l := range map[string]*steadyLoad{"dead": dying, "hung": hanging} {
		for _, r := range l.stop() {
			// The worker answers every failure itself, within the call's
			// 2s budget: the ingress never has to give up waiting (504
			// timeout).
			if r.ok() || r.code == "timeout" || r.elapsed > 4*time.Second {
				t.Errorf("%s: %s", name, r)
			}
		}
	}
	t.Logf("300 calls to the healthy server beside failing ones: the slowest took %s", slowest.Round(time.Millisecond))
}

// hangingServer accepts connections and never answers, until the test
// ends; it returns its MCP URL.
func hangingServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + ln.Addr().String() + "/mcp"
}

// NATS stops and starts again: /readyz says not ready (and calls fail fast
// with a retryable 503) while it is down, and ready with every worker once
// ingress and workers have reconnected by themselves; calls work again.
func testNATSRestart(t *testing.T, sh *scaleShared) {
	up, _ := startUpstream(t)
	nc := clustertest.Start(t, 1)
	e := newScaleEnv(t, sh, nc, "  demo:\n    url: "+up.URL+"\n", "")
	for range 2 {
		e.startWorker()
	}
	e.startIngress(2)
	if r := e.call("demo", "echo", `{"text":"before"}`); !r.ok() {
		t.Fatalf("call before the restart: %s", r)
	}

	nc.Stop(0)
	deadline := time.Now().Add(scaleWait)
	for {
		status, body := e.get("/readyz", "")
		if status == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz with NATS down: %d %s", status, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r := e.call("demo", "echo", `{"text":"down"}`); r.status != http.StatusServiceUnavailable || !r.retryable || r.elapsed > 2*time.Second {
		t.Errorf("call with NATS down: %s, want a fast retryable 503", r)
	}

	nc.Restart(0)
	e.waitWorkers(2)
	for i := range 20 {
		if r := e.call("demo", "echo", fmt.Sprintf(`{"text":"after %d"}`, i)); !r.ok() {
			t.Errorf("call after the restart: %s", r)
		}
	}
	for _, w := range e.workers {
		if !strings.Contains(w.Stderr.String(), "NATS reconnected") {
			t.Errorf("a worker did not log its reconnection")
		}
	}
}
