package jobs_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/worker/demoserver"
	"github.com/toolbus/toolbus/worker/internal/workertest"
	"github.com/toolbus/toolbus/worker/jobs"
	"github.com/toolbus/toolbus/worker/pool"
	"github.com/toolbus/toolbus/worker/upstream"
)

// env is an embedded JetStream, demo upstreams, the configuration of the
// servers demo and other (one upstream) and locked (an upstream requiring
// lockedToken), and the ingress's view of the jobs infrastructure.
type env struct {
	nats   *contractstest.NATS
	nc     *nats.Conn
	js     jetstream.JetStream
	infra  *jobs.Infra
	keys   workertest.Keys
	up     *workertest.Upstream
	locked *workertest.Upstream
	cfg    *config.File
}

const lockedToken = "Bearer the-right-one"

// Fast jobs settings: heartbeats every 500 ms (an ack wait short enough
// for the lost-worker tests, long enough for a loaded machine), short backoff.
var testJobs = config.Jobs{
	AckWait:     config.Duration(1500 * time.Millisecond),
	MaxAttempts: 3,
	Backoff:     []config.Duration{config.Duration(20 * time.Millisecond), config.Duration(50 * time.Millisecond)},
}

// setup starts the environment; adjust may edit the configuration before
// it is normalized.
func setup(t *testing.T, adjust func(*config.File)) *env {
	t.Helper()
	e := &env{nats: contractstest.StartNATS(t), keys: workertest.NewKeys(t)}
	e.nc = e.nats.Connect(t)
	var err error
	if e.js, err = jetstream.New(e.nc); err != nil {
		t.Fatal(err)
	}
	e.up = workertest.StartUpstream(t, demoserver.Options{})
	e.locked = workertest.StartUpstream(t, demoserver.Options{RequireToken: lockedToken})
	e.cfg = &config.File{
		MCPServers: map[string]*config.Server{
			"demo":   {URL: e.up.URL},
			"other":  {URL: e.up.URL},
			"locked": {URL: e.locked.URL},
		},
		Jobs: testJobs,
	}
	if adjust != nil {
		adjust(e.cfg)
	}
	if err := e.cfg.Normalize(); err != nil {
		t.Fatal(err)
	}
	// The ingress binds to what the workers create; creating it here too
	// (idempotently) lets tests queue jobs before any worker runs.
	if e.infra, err = jobs.Setup(contractstest.Ctx(t), e.js, e.cfg.Jobs); err != nil {
		t.Fatal(err)
	}
	return e
}

// worker is a running pool.
type worker struct {
	pool *pool.Pool
	logs *contractstest.LogBuffer
}

// startWorker starts a worker pool and waits until it consumes jobs. It is
// stopped when the test ends.
func (e *env) startWorker(t *testing.T, name string, opts ...pool.Option) *worker {
	t.Helper()
	w := &worker{logs: &contractstest.LogBuffer{}}
	w.pool = workertest.StartPool(t, e.cfg, e.nats.Connect(t), e.keys.Opener, w.logs.Logger("worker"), append([]pool.Option{pool.WithName(name)}, opts...)...)
	select {
	case <-w.pool.JobsReady():
	case <-contractstest.Ctx(t).Done():
		t.Fatalf("worker %s never consumed jobs:\n%s", name, w.logs)
	}
	return w
}

func (e *env) submit(t *testing.T, j workertest.Job) (*contracts.JobRequest, string) {
	t.Helper()
	return e.keys.SubmitJob(t, e.js, e.infra.Records, j)
}

func (e *env) terminal(t *testing.T, key string) *contracts.JobRecord {
	t.Helper()
	return workertest.Terminal(t, e.infra.Records, key)
}

// result returns a succeeded job's result, from the record or the object store.
func (e *env) result(t *testing.T, rec *contracts.JobRecord) json.RawMessage {
	t.Helper()
	if rec.Status != contracts.JobSucceeded {
		t.Fatalf("job %s is %s (%+v), want succeeded", rec.ID, rec.Status, rec.Error)
	}
	if rec.ResultObject == "" {
		return rec.Result
	}
	data, err := e.infra.Results.GetBytes(contractstest.Ctx(t), rec.ResultObject)
	if err != nil {
		t.Fatalf("result object %s: %v", rec.ResultObject, err)
	}
	return data
}

func wantFailed(t *testing.T, rec *contracts.JobRecord, code contracts.ErrorCode) {
	t.Helper()
	if rec.Status != contracts.JobFailed || rec.Error == nil || rec.Error.Code != code {
		t.Errorf("job %s: %s %+v, want failed with %s", rec.ID, rec.Status, rec.Error, code)
	}
	if rec.Result != nil || rec.ResultObject != "" {
		t.Errorf("failed job %s has a result", rec.ID)
	}
}

// logLines returns the job log lines of jobID.
func logLines(t *testing.T, logs *contractstest.LogBuffer, jobID string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range logs.Lines(t) {
		if l["message"] == "job" && l["job_id"] == jobID {
			out = append(out, l)
		}
	}
	return out
}

// runLines is logLines without the lines of deliveries that found the job
// finished or already running on the worker (skipped, duplicate): delivery
// is at least once, and on a loaded machine a heartbeat can come too late
// to keep JetStream from delivering a running job's message again, so a
// test that is not about redelivery counts the attempts only.
func runLines(t *testing.T, logs *contractstest.LogBuffer, jobID string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range logLines(t, logs, jobID) {
		if l["status"] != "skipped" && l["status"] != "duplicate" {
			out = append(out, l)
		}
	}
	return out
}

func TestJobs_SucceedsWithTheCallersToken(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	w := e.startWorker(t, "w1")
	const token = "Bearer job-user-1"
	req, key := e.submit(t, workertest.Job{Server: "demo", Tool: demoserver.ToolWhoami, Token: token})

	rec := e.terminal(t, key)
	if got := workertest.Text(t, e.result(t, rec)); got != token {
		t.Errorf("whoami = %q, want %q", got, token)
	}
	if rec.Attempts != 1 || rec.StartedAt == nil || rec.FinishedAt == nil || rec.Error != nil || rec.ResultObject != "" {
		t.Errorf("record %+v", rec)
	}
	if got := e.up.Recorder.Authorizations(); got[len(got)-1] != token {
		t.Errorf("upstream received %q", got[len(got)-1])
	}
	workertest.Drained(t, e.js, "demo")

	lines := runLines(t, w.logs, req.JobID())
	if len(lines) != 1 {
		t.Fatalf("log lines of the job: %v", lines)
	}
	l := lines[0]
	for k, want := range map[string]any{
		"key_id": "team-a", "server": "demo", "tool": "whoami", "attempt": 1.0,
		"status": "succeeded", "token_fp": contracts.Fingerprint(token),
	} {
		if l[k] != want {
			t.Errorf("log %s = %v, want %v", k, l[k], want)
		}
	}
	if _, ok := l["duration_ms"].(float64); !ok {
		t.Errorf("log line without duration_ms: %v", l)
	}
}

// TestJobs_PanicFailsTheJobAsInternal: an upstream answer that makes a
// job's run panic fails the job with internal (not retryable: the answer
// would do it again); the message is settled, and the worker runs the next
// job.
func TestJobs_PanicFailsTheJobAsInternal(t *testing.T) {
	t.Parallel()
	const marker = "answer-that-panics-5c1d"
	e := setup(t, nil)
	w := e.startWorker(t, "w1", pool.WithUpstreamOptions(upstream.Options{Transport: workertest.PanicOnAnswer(marker)}))
	_, key := e.submit(t, workertest.Job{Server: "demo", Tool: demoserver.ToolEcho, Args: `{"text":"` + marker + `"}`})
	rec := e.terminal(t, key)
	wantFailed(t, rec, contracts.CodeInternal)
	if rec.Attempts != 1 {
		t.Errorf("attempts = %d, want 1", rec.Attempts)
	}
	_, key = e.submit(t, workertest.Job{Server: "demo", Tool: demoserver.ToolEcho, Args: `{"text":"next"}`})
	if got := workertest.Text(t, e.result(t, e.terminal(t, key))); got != "next" {
		t.Errorf("the next job: %q", got)
	}
	workertest.Drained(t, e.js, "demo")
	if logs := w.logs.String(); !strings.Contains(logs, "panic recovered") || strings.Contains(logs, marker) {
		t.Errorf("want the panic logged without the upstream's answer:\n%s", logs)
	}
}

func TestJobs_ProgressIsRecordedWhileRunning(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	e.startWorker(t, "w1")
	_, key := e.submit(t, workertest.Job{Server: "demo", Tool: demoserver.ToolSlow, Args: `{"ms":1200}`})

	rec := workertest.WaitRecord(t, e.infra.Records, key, "progress while running", func(r *contracts.JobRecord) bool {
		return r.Status == contracts.JobRunning && r.Progress != nil && r.Progress.Progress >= 1
	})
	if p := rec.Progress; p.Total == nil || *p.Total != 4 || !strings.HasPrefix(p.Message, "step ") {
		t.Errorf("progress %+v", p)
	}
	rec = e.terminal(t, key)
	if got := workertest.Text(t, e.result(t, rec)); got != "slept 1.2s" {
		t.Errorf("result %q", got)
	}
	if rec.Progress == nil || rec.Progress.Progress != 3 {
		t.Errorf("final progress %+v, want the last one (3)", rec.Progress)
	}
}

func TestJobs_Cancel(t *testing.T) {
	t.Parallel()
	t.Run("a queued job never runs", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		req, rec := e.keys.JobRequest(t, workertest.Job{Server: "demo", Tool: demoserver.ToolEcho, Args: `{"text":"x"}`})
		workertest.CreateRecord(t, e.infra.Records, rec)
		workertest.CancelJob(t, e.js, e.infra.Records, req.RecordKey(), true)
		workertest.PublishJob(t, e.js, req, "")
		w := e.startWorker(t, "w1")

		workertest.Drained(t, e.js, "demo")
		got, _ := workertest.Record(t, e.infra.Records, req.RecordKey())
		if got.Status != contracts.JobCancelled || got.Attempts != 0 || got.StartedAt != nil {
			t.Errorf("record %+v", got)
		}
		if n := e.up.Stats().Requests; n != 0 {
			t.Errorf("the upstream saw %d calls", n)
		}
		if l := logLines(t, w.logs, req.JobID()); len(l) != 1 || l[0]["status"] != "skipped" {
			t.Errorf("log %v", l)
		}
	})
	for _, tt := range []struct {
		name     string
		announce bool
	}{
		{"a running job's upstream call is cancelled", true},
		// A worker that missed the announcement sees the record at its next heartbeat.
		{"without the announcement the record is enough", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, nil)
			w := e.startWorker(t, "w1")
			req, key := e.submit(t, workertest.Job{Server: "demo", Tool: demoserver.ToolSlow, Args: `{"ms":20000}`, Timeout: 30 * time.Second})
			workertest.WaitRecord(t, e.infra.Records, key, "running", func(r *contracts.JobRecord) bool { return r.Status == contracts.JobRunning })
			contractstest.Eventually(t, "the upstream call", func() bool { return e.up.Stats().Running == 1 })

			workertest.CancelJob(t, e.js, e.infra.Records, key, tt.announce)
			contractstest.Eventually(t, "the upstream call to be cancelled", func() bool {
				s := e.up.Stats()
				return s.Running == 0 && s.Cancelled == 1
			})
			workertest.Drained(t, e.js, "demo")
			rec, _ := workertest.Record(t, e.infra.Records, key)
			if rec.Status != contracts.JobCancelled || rec.Result != nil || rec.Attempts != 1 || rec.Error.Code != contracts.CodeCancelled {
				t.Errorf("record %+v", rec)
			}
			contractstest.Eventually(t, "the job's log line", func() bool { return len(runLines(t, w.logs, req.JobID())) == 1 })
			if l := runLines(t, w.logs, req.JobID())[0]; l["status"] != "cancelled" {
				t.Errorf("log %v", l)
			}
		})
	}
}

func TestJobs_RedeliveredJobs(t *testing.T) {
	t.Parallel()
	t.Run("a finished job does not run again", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		w := e.startWorker(t, "w1")
		req, key := e.submit(t, workertest.Job{Server: "demo", Tool: demoserver.ToolEcho, Args: `{"text":"once"}`})
		e.terminal(t, key)
		_, rev := workertest.Record(t, e.infra.Records, key)

		// The same message again (as after a lost ack), past the duplicate window.
		if _, err := e.js.Publish(contractstest.Ctx(t), contracts.JobSubject("demo", contracts.KeyTag(req.KeyID)), workertest.Encode(t, req)); err != nil {
			t.Fatal(err)
		}
		contractstest.Eventually(t, "the second delivery to be skipped", func() bool { return len(logLines(t, w.logs, req.JobID())) == 2 })
		workertest.Drained(t, e.js, "demo")
		if _, rev2 := workertest.Record(t, e.infra.Records, key); rev2 != rev {
			t.Error("the record changed")
		}
		if n := e.up.Stats().Requests; n != 1 {
			t.Errorf("the upstream saw %d calls, want 1", n)
		}
	})
	t.Run("a job left running by a lost worker runs again", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		req, rec := e.keys.JobRequest(t, workertest.Job{Server: "demo", Tool: demoserver.ToolEcho, Args: `{"text":"again"}`})
		now := time.Now().UTC()
		rec.Status, rec.Attempts, rec.StartedAt = contracts.JobRunning, 1, &now
		workertest.CreateRecord(t, e.infra.Records, rec)
		workertest.PublishJob(t, e.js, req, "")
		e.startWorker(t, "w1")

		got := e.terminal(t, req.RecordKey())
		if workertest.Text(t, e.result(t, got)) != "again" || got.Attempts != 2 {
			t.Errorf("record %+v", got)
		}
	})
	t.Run("a lost worker's last attempt fails the job", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		req, rec := e.keys.JobRequest(t, workertest.Job{Server: "demo", Tool: demoserver.ToolEcho, Args: `{"text":"x"}`})
		rec.Status, rec.Attempts = contracts.JobRunning, testJobs.MaxAttempts
		workertest.CreateRecord(t, e.infra.Records, rec)
		workertest.PublishJob(t, e.js, req, "")
		e.startWorker(t, "w1")

		got := e.terminal(t, req.RecordKey())
		wantFailed(t, got, contracts.CodeUpstreamError)
		if want := fmt.Sprintf("gave up after %d attempts", testJobs.MaxAttempts); got.Error.Message != want || got.Attempts != testJobs.MaxAttempts {
			t.Errorf("record %+v %+v, want %q", got, got.Error, want)
		}
		if n := e.up.Stats().Requests; n != 0 {
			t.Errorf("the upstream saw %d calls", n)
		}
	})
}

// While a finished job's outcome is written (a large result into a loaded
// store can take longer than the ack wait), the message is kept in
// progress: it is not delivered again.
func TestJobs_NoRedeliveryWhileTheOutcomeIsWritten(t *testing.T) {
	t.Parallel()
	const ackWait = 2 * time.Second
	e := setup(t, func(f *config.File) { f.Jobs.AckWait = config.Duration(ackWait) })
	w := e.startWorker(t, "w1")
	req, rec := e.keys.JobRequest(t, workertest.Job{Server: "demo", Tool: demoserver.ToolEcho, Args: `{"text":"stored slowly"}`})
	defer jobs.SetBeforeFinish(req.JobID(), func() { time.Sleep(2*ackWait + ackWait/2) })()
	workertest.CreateRecord(t, e.infra.Records, rec)
	workertest.PublishJob(t, e.js, req, "")

	got := e.terminal(t, req.RecordKey())
	if workertest.Text(t, e.result(t, got)) != "stored slowly" || got.Attempts != 1 {
		t.Errorf("record %+v", got)
	}
	workertest.Drained(t, e.js, "demo")
	if lines := logLines(t, w.logs, req.JobID()); len(lines) != 1 {
		t.Errorf("the job's message was delivered %d times, want once: %v", len(lines), lines)
	}
	if n := e.up.Stats().Requests; n != 1 {
		t.Errorf("the upstream saw %d calls, want 1", n)
	}
}

func TestJobs_Retries(t *testing.T) {
	t.Parallel()
	t.Run("a retryable failure is retried with backoff", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		w := e.startWorker(t, "w1")
		e.up.FailNext(2)
		req, key := e.submit(t, workertest.Job{Server: "demo", Tool: demoserver.ToolEcho, Args: `{"text":"third time"}`})

		rec := e.terminal(t, key)
		if workertest.Text(t, e.result(t, rec)) != "third time" || rec.Attempts != 3 || rec.Error != nil {
			t.Errorf("record %+v", rec)
		}
		// The log line follows the record.
		contractstest.Eventually(t, "the last attempt's log line", func() bool { return len(runLines(t, w.logs, req.JobID())) == 3 })
		var statuses []string
		for _, l := range runLines(t, w.logs, req.JobID()) {
			statuses = append(statuses, fmt.Sprintf("%v/%v/%v", l["attempt"], l["status"], l["code"]))
		}
		if want := "1/retry/upstream_error 2/retry/upstream_error 3/succeeded/<nil>"; strings.Join(statuses, " ") != want {
			t.Errorf("attempts %v, want %s", statuses, want)
		}
	})
	t.Run("the error of the last attempt fails the job", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		e.startWorker(t, "w1")
		e.up.FailNext(100)
		_, key := e.submit(t, workertest.Job{Server: "demo", Tool: demoserver.ToolEcho, Args: `{"text":"x"}`})
		rec := e.terminal(t, key)
		wantFailed(t, rec, contracts.CodeUpstreamError)
		if rec.Attempts != testJobs.MaxAttempts || e.up.Stats().Failed != testJobs.MaxAttempts {
			t.Errorf("attempts %d, upstream %+v", rec.Attempts, e.up.Stats())
		}
	})
	t.Run("an upstream that is down, then up", func(t *testing.T) {
		t.Parallel()
		e := setup(t, func(f *config.File) {
			f.MCPServers["demo"].URL = "http://127.0.0.1:1/mcp" // refused
			f.Jobs.MaxAttempts = 2
		})
		e.startWorker(t, "w1")
		_, key := e.submit(t, workertest.Job{Server: "demo", Tool: demoserver.ToolEcho, Args: `{"text":"x"}`})
		rec := e.terminal(t, key)
		wantFailed(t, rec, contracts.CodeUpstreamError)
		if rec.Attempts != 2 {
			t.Errorf("attempts %d", rec.Attempts)
		}
	})
	t.Run("a permanent failure fails at once", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		e.startWorker(t, "w1")
		for _, tt := range []struct {
			job  workertest.Job
			code contracts.ErrorCode
		}{
			{workertest.Job{Server: "demo", Tool: "no-such-tool"}, contracts.CodeUnknownTool},
			{workertest.Job{Server: "locked", Tool: demoserver.ToolWhoami, Token: "Bearer wrong"}, contracts.CodeUpstreamUnauthorized},
		} {
			_, key := e.submit(t, tt.job)
			rec := e.terminal(t, key)
			wantFailed(t, rec, tt.code)
			if rec.Attempts != 1 {
				t.Errorf("%s: %d attempts", tt.code, rec.Attempts)
			}
		}
	})
	t.Run("a tool error is a result", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		e.startWorker(t, "w1")
		_, key := e.submit(t, workertest.Job{Server: "demo", Tool: demoserver.ToolFail})
		rec := e.terminal(t, key)
		var res workertest.Result
		if err := json.Unmarshal(e.result(t, rec), &res); err != nil || !res.IsError {
			t.Errorf("result %s: %v", rec.Result, err)
		}
	})
}

// The sealed token is bound to the job: a message moved to another server's
// subject, or changed to another tool, owner or job (its record written as
// an ingress would have), does not open; the job fails with seal_invalid
// and the upstream never sees the token.
func TestJobs_SealIsBoundToTheJob(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	e.startWorker(t, "w1")
	const token = "Bearer sealed-for-one-job"
	otherSubject := contracts.JobSubject("other", contracts.KeyTag("team-a"))
	tests := []struct {
		name    string
		mutate  func(*contracts.JobRequest)
		subject string
	}{
		{"moved to another server's subject", nil, otherSubject},
		{"moved with its server field", func(r *contracts.JobRequest) { r.Server = "other" }, otherSubject},
		{"another tool", func(r *contracts.JobRequest) {
			r.Tool, r.Arguments = demoserver.ToolEcho, json.RawMessage(`{"text":"x"}`)
		}, ""},
		{"another owner", func(r *contracts.JobRequest) { r.Owner = contracts.Owner("team-b", "") }, ""},
		{"another gateway key", func(r *contracts.JobRequest) { r.KeyID = "team-b" }, ""},
		{"another job", func(r *contracts.JobRequest) { r.RequestID = contracts.NewJobID(time.Now()) }, ""},
		{"another expiry", func(r *contracts.JobRequest) { r.ExpiresUnixMS += 60_000 }, ""},
		{"other arguments", func(r *contracts.JobRequest) { r.Arguments = json.RawMessage(`{"edited":true}`) }, ""},
		{"another timeout", func(r *contracts.JobRequest) { r.TimeoutMS += 1000 }, ""},
		{"tampered", func(r *contracts.JobRequest) {
			sealed := *r.Token
			sealed.Ciphertext = append([]byte(nil), sealed.Ciphertext...)
			sealed.Ciphertext[0] ^= 1
			r.Token = &sealed
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := e.keys.JobRequest(t, workertest.Job{Server: "demo", Tool: demoserver.ToolWhoami, Token: token})
			if tt.mutate != nil {
				tt.mutate(req)
			}
			workertest.CreateRecord(t, e.infra.Records, workertest.RecordOf(req, time.Now()))
			workertest.PublishJob(t, e.js, req, tt.subject)
			rec := e.terminal(t, req.RecordKey())
			wantFailed(t, rec, contracts.CodeSealInvalid)
			if rec.Error.Retryable || rec.Attempts != 1 {
				t.Errorf("record %+v %+v", rec, rec.Error)
			}
		})
	}
	for _, a := range e.up.Recorder.Authorizations() {
		if a == token {
			t.Error("the upstream received the token")
		}
	}
	if n := e.up.Stats().Requests; n != 0 {
		t.Errorf("the upstream saw %d calls", n)
	}
}

func TestJobs_ResultSizes(t *testing.T) {
	t.Parallel()
	e := setup(t, func(f *config.File) { f.Jobs.InlineResultBytes = 64 << 10 })
	w := e.startWorker(t, "w1")
	// The four calls run at once, and under -race on a loaded machine the
	// 8 MiB answers take a while to produce: an attempt that timed out
	// would be retried (timeouts are retryable), and the too-large job
	// would fail after 2 attempts. So no call times out before this test
	// would give up waiting for it.
	const callTimeout = 4*contractstest.WaitTimeout + time.Minute
	big := func(n int) workertest.Job {
		return workertest.Job{Server: "demo", Tool: demoserver.ToolBig, Args: fmt.Sprintf(`{"bytes":%d}`, n), Timeout: callTimeout}
	}
	tests := []struct {
		name   string
		bytes  int
		object bool
	}{
		{"small inline", 1000, false},
		{"1 MiB in the object store", 1 << 20, true},
		{"near the limit in the object store", contracts.MaxJobResultBytes - 4096, true},
	}
	keys := make([]string, len(tests))
	for i, tt := range tests {
		_, keys[i] = e.submit(t, big(tt.bytes))
	}
	_, tooLarge := e.submit(t, big(contracts.MaxJobResultBytes+1))
	for i, tt := range tests {
		rec := e.terminal(t, keys[i])
		res := e.result(t, rec)
		if got := workertest.Text(t, res); len(got) != tt.bytes {
			t.Errorf("%s: %d bytes of text, want %d", tt.name, len(got), tt.bytes)
		}
		if tt.object != (rec.ResultObject != "") || (tt.object && (rec.Result != nil || rec.ResultBytes != len(res))) {
			t.Errorf("%s: result_object %q, %d bytes inline, result_bytes %d", tt.name, rec.ResultObject, len(rec.Result), rec.ResultBytes)
		}
		if tt.object && !strings.HasPrefix(rec.ResultObject, contracts.ResultObject(rec.Owner, rec.ID)) {
			t.Errorf("%s: object name %q", tt.name, rec.ResultObject)
		}
	}
	rec := e.terminal(t, tooLarge)
	wantFailed(t, rec, contracts.CodeResultTooLarge)
	if rec.Attempts != 1 {
		t.Errorf("result_too_large after %d attempts: %v", rec.Attempts, runLines(t, w.logs, rec.ID))
	}
}

func TestJobs_Expired(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	e.startWorker(t, "w1")
	t.Run("its credential expired", func(t *testing.T) {
		_, key := e.submit(t, workertest.Job{Server: "demo", Tool: demoserver.ToolWhoami, Token: "Bearer u", Expires: time.Now().Add(-time.Second)})
		rec := e.terminal(t, key)
		if rec.Status != contracts.JobExpired || rec.Attempts != 0 || rec.Error == nil || rec.StartedAt != nil {
			t.Errorf("record %+v", rec)
		}
	})
	t.Run("it waited longer than max_queue_time", func(t *testing.T) {
		req, rec := e.keys.JobRequest(t, workertest.Job{Server: "demo", Tool: demoserver.ToolEcho, Args: `{"text":"x"}`})
		rec.CreatedAt = rec.CreatedAt.Add(-e.cfg.Jobs.MaxQueueTime.D())
		workertest.CreateRecord(t, e.infra.Records, rec)
		workertest.PublishJob(t, e.js, req, "")
		if rec := e.terminal(t, req.RecordKey()); rec.Status != contracts.JobExpired || rec.Attempts != 0 {
			t.Errorf("record %+v", rec)
		}
	})
	workertest.Drained(t, e.js, "demo")
	if n := e.up.Stats().Requests; n != 0 {
		t.Errorf("the upstream saw %d calls", n)
	}
}

func TestJobs_Stop(t *testing.T) {
	t.Parallel()
	t.Run("running jobs finish", func(t *testing.T) {
		t.Parallel()
		e := setup(t, func(f *config.File) { f.Worker.DrainTimeout = config.Duration(contractstest.WaitTimeout) })
		w := e.startWorker(t, "w1")
		_, key := e.submit(t, workertest.Job{Server: "demo", Tool: demoserver.ToolSlow, Args: `{"ms":800}`})
		contractstest.Eventually(t, "the upstream call", func() bool { return e.up.Stats().Running == 1 })
		if err := w.pool.Stop(contractstest.Ctx(t)); err != nil {
			t.Errorf("Stop: %v", err)
		}
		// Stop returned after the job ended and was recorded.
		rec, _ := workertest.Record(t, e.infra.Records, key)
		if rec.Status != contracts.JobSucceeded {
			t.Errorf("after Stop: %+v", rec)
		}
		// A job submitted now waits for a worker.
		_, later := e.submit(t, workertest.Job{Server: "demo", Tool: demoserver.ToolEcho, Args: `{"text":"later"}`})
		e.startWorker(t, "w2")
		if rec := e.terminal(t, later); rec.Status != contracts.JobSucceeded {
			t.Errorf("later job: %+v", rec)
		}
	})
	t.Run("jobs left at the drain timeout go to another worker", func(t *testing.T) {
		t.Parallel()
		e := setup(t, func(f *config.File) {
			f.Worker.DrainTimeout = config.Duration(100 * time.Millisecond)
			f.Jobs.AckWait = config.Duration(time.Minute) // only the nak can hand it over quickly
		})
		w := e.startWorker(t, "w1")
		_, key := e.submit(t, workertest.Job{Server: "demo", Tool: demoserver.ToolSlow, Args: `{"ms":1500}`})
		contractstest.Eventually(t, "the upstream call", func() bool { return e.up.Stats().Running == 1 })
		if err := w.pool.Stop(contractstest.Ctx(t)); err == nil {
			t.Error("Stop returned nil although it gave a job back")
		}
		rec, _ := workertest.Record(t, e.infra.Records, key)
		if rec.Status != contracts.JobQueued || rec.Attempts != 1 {
			t.Errorf("after Stop: %+v", rec)
		}
		e.startWorker(t, "w2")
		rec = e.terminal(t, key)
		if rec.Status != contracts.JobSucceeded || rec.Attempts != 2 {
			t.Errorf("record %+v", rec)
		}
	})
}

// Jobs take the same call slots as synchronous calls: a worker allowed one
// call at a time runs one job at a time, and takes the next job only when
// it can start it.
func TestJobs_Backpressure(t *testing.T) {
	t.Parallel()
	e := setup(t, func(f *config.File) { f.Worker.MaxConcurrency = 1 })
	e.startWorker(t, "w1")
	var keys []string
	for range 3 {
		_, key := e.submit(t, workertest.Job{Server: "demo", Tool: demoserver.ToolSlow, Args: `{"ms":200}`})
		keys = append(keys, key)
	}
	for _, key := range keys {
		if rec := e.terminal(t, key); rec.Status != contracts.JobSucceeded || rec.Attempts != 1 {
			t.Errorf("record %+v", rec)
		}
	}
	if s := e.up.Stats(); s.MaxRunning != 1 || s.Started != 3 {
		t.Errorf("upstream %+v, want one call at a time", s)
	}
}

// A worker started with some servers runs only their jobs; the jobs of a
// server go to the workers that serve it.
func TestJobs_DedicatedPools(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	demoWorker := e.startWorker(t, "demo-only", pool.WithServers("demo"))
	otherWorker := e.startWorker(t, "other-only", pool.WithServers("other"))
	var demoJobs, otherJobs []*contracts.JobRequest
	for range 3 {
		req, _ := e.submit(t, workertest.Job{Server: "demo", Tool: demoserver.ToolEcho, Args: `{"text":"d"}`})
		demoJobs = append(demoJobs, req)
		req, _ = e.submit(t, workertest.Job{Server: "other", Tool: demoserver.ToolEcho, Args: `{"text":"o"}`})
		otherJobs = append(otherJobs, req)
	}
	for _, c := range []struct {
		jobs      []*contracts.JobRequest
		runs, not *worker
	}{{demoJobs, demoWorker, otherWorker}, {otherJobs, otherWorker, demoWorker}} {
		for _, req := range c.jobs {
			e.terminal(t, req.RecordKey())
			contractstest.Eventually(t, "the job's log line", func() bool {
				return len(runLines(t, c.runs.logs, req.JobID()))+len(runLines(t, c.not.logs, req.JobID())) > 0
			})
			if runs, not := runLines(t, c.runs.logs, req.JobID()), runLines(t, c.not.logs, req.JobID()); len(runs) != 1 || len(not) != 0 {
				t.Errorf("job of %s not run by its dedicated worker: its worker logged %v, the other %v", req.Server, runs, not)
			}
		}
	}
}

// Concurrent jobs of several users: each gets exactly its own token.
func TestJobs_ConcurrentTokensNeverMix(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	e.startWorker(t, "w1")
	e.startWorker(t, "w2")
	keys := map[string]string{}
	for i := range 30 {
		token := fmt.Sprintf("Bearer user-%02d", i%10)
		_, key := e.submit(t, workertest.Job{Server: "demo", Tool: demoserver.ToolWhoami, Token: token})
		keys[key] = token
	}
	for key, token := range keys {
		if got := workertest.Text(t, e.result(t, e.terminal(t, key))); got != token {
			t.Errorf("job saw %q, want %q", got, token)
		}
	}
}

// The token never crosses NATS in plaintext (job messages, records,
// results, anything on the bus), never sits in a record, and is never
// logged, whatever the outcome.
func TestJobs_TokenNeverLeaks(t *testing.T) {
	t.Parallel()
	// Service credentials: a server with its own bearer token and an OAuth2
	// client credentials server; they and the token it obtains must not
	// leak either.
	const svcSecret, clientSecret = "svc-job-bearer-1b2c3d", "svc-job-client-secret-4e5f"
	tokens := contractstest.StartTokenEndpoint(t, "toolbus", clientSecret, time.Hour)
	e := setup(t, func(c *config.File) {
		c.MCPServers["svc"] = &config.Server{URL: c.MCPServers["demo"].URL, Credentials: config.Credentials{AuthType: "bearer_token", AuthValue: svcSecret}}
		c.MCPServers["m2m"] = &config.Server{URL: c.MCPServers["demo"].URL, Credentials: config.Credentials{
			AuthType: "oauth2", OAuth2Flow: "client_credentials", ClientID: "toolbus", ClientSecret: clientSecret, TokenURL: tokens.URL}}
	})
	spy := e.nats.Connect(t)
	bus := contractstest.RecordAll(t, spy, ">")
	w := e.startWorker(t, "w1")
	const secret = "sk-job-user-7a6b5c4d3e2f"
	const token = "Bearer " + secret
	e.up.FailNext(1)
	var keys []string
	for _, j := range []workertest.Job{
		{Server: "svc", Tool: demoserver.ToolEcho, Args: `{"text":"svc"}`, Token: token},
		{Server: "m2m", Tool: demoserver.ToolEcho, Args: `{"text":"m2m"}`, Token: token},
		{Server: "demo", Tool: demoserver.ToolEcho, Args: `{"text":"hi"}`, Token: token},                                // retried once, then succeeds
		{Server: "demo", Tool: demoserver.ToolBig, Args: `{"bytes":400000}`, Token: token},                              // result in the object store
		{Server: "demo", Tool: "missing", Token: token},                                                                 // unknown_tool
		{Server: "locked", Tool: demoserver.ToolWhoami, Token: token},                                                   // upstream_unauthorized
		{Server: "demo", Tool: demoserver.ToolWhoami, Token: token, Expires: time.Now().Add(-time.Second)},              // expired
		{Server: "demo", Tool: demoserver.ToolSlow, Args: `{"ms":2000}`, Token: token, Timeout: 200 * time.Millisecond}, // upstream_timeout, retried
	} {
		_, key := e.submit(t, j)
		keys = append(keys, key)
	}
	// And a token copied into another job.
	victim, _ := e.keys.JobRequest(t, workertest.Job{Server: "demo", Tool: demoserver.ToolWhoami, Token: token})
	stolen, rec := e.keys.JobRequest(t, workertest.Job{Server: "demo", Tool: demoserver.ToolEcho, Args: `{"text":"x"}`})
	stolen.Token = victim.Token
	workertest.CreateRecord(t, e.infra.Records, rec)
	workertest.PublishJob(t, e.js, stolen, "")
	keys = append(keys, stolen.RecordKey())

	for i, key := range keys {
		rec := e.terminal(t, key)
		if i < 3 && rec.Status != contracts.JobSucceeded {
			t.Errorf("job %d: %+v", i, rec)
		}
	}
	if !slices.Contains(e.up.Recorder.Authorizations(), token) {
		t.Fatal("the token never reached the upstream")
	}
	issued := tokens.Issued()
	if len(issued) != 1 || !slices.Contains(e.up.Recorder.Authorizations(), "Bearer "+svcSecret) ||
		!slices.Contains(e.up.Recorder.Authorizations(), "Bearer "+issued[0]) {
		t.Fatal("the service credentials never reached the upstream")
	}
	bus.Flush(t)

	// Every record as stored.
	lister, err := e.infra.Records.ListKeys(contractstest.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for key := range lister.Keys() {
		entry, err := e.infra.Records.Get(contractstest.Ctx(t), key)
		if err != nil {
			t.Fatal(err)
		}
		n++
		for _, s := range []string{secret, svcSecret, clientSecret, issued[0]} {
			if strings.Contains(string(entry.Value()), s) {
				t.Errorf("record %s holds %q", key, s)
			}
		}
	}
	if n < len(keys) {
		t.Errorf("read %d records", n)
	}
	workertest.CheckTokenKept(t, w.logs, token, []string{secret, svcSecret, clientSecret, issued[0]}, bus)
}

// Setup creates what the ingress binds to, as configured; a worker creates
// its servers' consumers. A full stream refuses new jobs and never drops the
// ones it holds.
func TestSetup(t *testing.T) {
	t.Parallel()
	e := setup(t, func(f *config.File) {
		f.Jobs.MaxStreamMessages = 2
		f.Jobs.Retention = config.Duration(time.Hour)
		f.MCPServers["demo"].MaxConcurrency = 7
	})
	ctx := contractstest.Ctx(t)
	info, err := e.infra.Stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := info.Config
	if c.Retention != jetstream.WorkQueuePolicy || c.Storage != jetstream.FileStorage || c.Discard != jetstream.DiscardNew ||
		c.MaxAge != time.Hour || c.MaxMsgs != 2 || c.MaxBytes != -1 || c.Duplicates != jobs.DuplicateWindow ||
		!slices.Equal(c.Subjects, []string{contracts.AllJobsSubject}) {
		t.Errorf("stream config %+v", c)
	}
	if st, err := e.infra.Records.Status(ctx); err != nil || st.History() != 1 || st.TTL() != time.Hour || st.Bucket() != contracts.JobsBucket {
		t.Errorf("bucket %+v, %v", st, err)
	}
	if st, err := e.infra.Results.Status(ctx); err != nil || st.TTL() != time.Hour || st.Bucket() != contracts.ResultsBucket {
		t.Errorf("object store %+v, %v", st, err)
	}

	e.startWorker(t, "w1", pool.WithServers("demo"))
	cons, err := e.js.Consumer(ctx, contracts.JobsStream, contracts.JobsConsumer("demo"))
	if err != nil {
		t.Fatal(err)
	}
	cc := cons.CachedInfo().Config
	if cc.Durable != contracts.JobsConsumer("demo") || cc.FilterSubject != contracts.ServerJobsSubject("demo") ||
		cc.AckPolicy != jetstream.AckExplicitPolicy || cc.AckWait != testJobs.AckWait.D() || cc.MaxDeliver != -1 || cc.MaxAckPending != jobs.MaxJobsInFlight {
		t.Errorf("consumer config %+v", cc)
	}
	if _, err := e.js.Consumer(ctx, contracts.JobsStream, contracts.JobsConsumer("other")); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("a worker of demo only created other's consumer (%v)", err)
	}

	// A stopped-up stream: two jobs of a server nobody serves.
	for range 2 {
		e.submit(t, workertest.Job{Server: "other", Tool: demoserver.ToolEcho, Args: `{"text":"x"}`})
	}
	req, _ := e.keys.JobRequest(t, workertest.Job{Server: "other", Tool: demoserver.ToolEcho, Args: `{"text":"x"}`})
	_, err = e.js.Publish(ctx, contracts.JobSubject("other", contracts.KeyTag("team-a")), workertest.Encode(t, req))
	if err == nil || !strings.Contains(err.Error(), "maximum messages") {
		t.Errorf("publish to a full stream: %v, want a refusal", err)
	}
	if info, err := e.infra.Stream.Info(ctx); err != nil || info.State.Msgs != 2 {
		t.Errorf("the stream holds %v messages (%v), want the first 2", info.State.Msgs, err)
	}
	// Setup is idempotent, and binds to what is configured already.
	updates := contractstest.RecordAll(t, e.nats.Connect(t), "$JS.API.STREAM.UPDATE.>")
	if _, err := jobs.Setup(ctx, e.js, e.cfg.Jobs); err != nil {
		t.Errorf("second Setup: %v", err)
	}
	updates.Flush(t)
	if n := updates.Count(); n != 0 {
		t.Errorf("Setup of unchanged infrastructure sent %d stream updates", n)
	}
	changed := e.cfg.Jobs
	changed.Retention = config.Duration(2 * time.Hour)
	infra, err := jobs.Setup(ctx, e.js, changed)
	if err != nil {
		t.Fatal(err)
	}
	updates.Flush(t)
	if n := updates.Count(); n != 3 {
		t.Errorf("Setup with a new retention sent %d stream updates, want 3", n)
	}
	if st, err := infra.Records.Status(ctx); err != nil || st.TTL() != 2*time.Hour {
		t.Errorf("bucket TTL after the change: %v, %v", st.TTL(), err)
	}
}

// A job waiting for a call slot keeps its message (it is heart-beaten, not
// redelivered), and Stop hands it to another worker at once.
func TestJobs_WaitingForASlot(t *testing.T) {
	t.Parallel()
	for _, stop := range []bool{false, true} {
		t.Run(fmt.Sprintf("stop=%v", stop), func(t *testing.T) {
			t.Parallel()
			e := setup(t, func(f *config.File) {
				f.Worker.MaxConcurrency = 1
				f.Worker.DrainTimeout = config.Duration(contractstest.WaitTimeout)
			})
			w1 := e.startWorker(t, "w1")
			// A synchronous call holds the only slot, for several ack waits.
			inbox := nats.NewInbox()
			sub, err := e.nc.SubscribeSync(inbox)
			if err != nil {
				t.Fatal(err)
			}
			call := e.keys.Request(t, workertest.Call{Server: "demo", Tool: demoserver.ToolSlow, Args: `{"ms":2500}`}, inbox)
			if err := e.nc.PublishMsg(workertest.Msg(t, contracts.CallSubject("demo"), inbox, call)); err != nil {
				t.Fatal(err)
			}
			contractstest.Eventually(t, "the synchronous call", func() bool { return e.up.Stats().Running == 1 })
			req, key := e.submit(t, workertest.Job{Server: "demo", Tool: demoserver.ToolEcho, Args: `{"text":"waited"}`})
			contractstest.Eventually(t, "w1 to hold the job", func() bool {
				c, err := e.js.Consumer(contractstest.Ctx(t), contracts.JobsStream, contracts.JobsConsumer("demo"))
				if err != nil {
					return false
				}
				info, err := c.Info(contractstest.Ctx(t))
				return err == nil && info.NumAckPending == 1
			})

			runner := w1
			stopped := make(chan error, 1)
			if stop {
				runner = e.startWorker(t, "w2")
				go func() { stopped <- w1.pool.Stop(contractstest.Ctx(t)) }()
			}
			rec := e.terminal(t, key)
			if stop {
				select {
				case err := <-stopped:
					t.Fatalf("w1 stopped (%v) before w2 ran the job it gave back", err)
				default:
				}
			}
			if rec.Status != contracts.JobSucceeded || rec.Attempts != 1 {
				t.Errorf("record %+v", rec)
			}
			contractstest.Eventually(t, "the job's log line", func() bool { return len(runLines(t, runner.logs, req.JobID())) > 0 })
			if l := runLines(t, runner.logs, req.JobID()); len(l) != 1 || l[0]["status"] != "succeeded" {
				t.Errorf("deliveries of the job: %v, want one", l)
			}
			if stop && len(logLines(t, w1.logs, req.JobID())) != 0 {
				t.Error("w1 ran the job it gave back")
			}
			m, err := sub.NextMsgWithContext(contractstest.Ctx(t))
			if err != nil {
				t.Fatal(err)
			}
			if resp, err := contracts.DecodeCallResponse(workertest.ReplyOf(m)); err != nil || resp.Error != nil {
				t.Errorf("synchronous call: %s %v", m.Data, err)
			}
			if s := e.up.Stats(); !stop && s.MaxRunning != 1 {
				t.Errorf("upstream %+v, want one call at a time", s)
			}
		})
	}
}

// A message that is not a job, or whose record does not exist, is
// terminated (and logged), not redelivered forever. A missing record is
// given a few seconds first: a replica may not show a new record yet.
func TestJobs_UnusableMessagesAreTerminated(t *testing.T) {
	t.Parallel()
	for _, late := range []bool{false, true} {
		t.Run(fmt.Sprintf("late=%v", late), func(t *testing.T) {
			t.Parallel()
			e := setup(t, nil)
			var opts []pool.Option
			if late {
				opts = append(opts, pool.WithClock(func() time.Time { return time.Now().Add(time.Minute) }))
			}
			w := e.startWorker(t, "w1", opts...)
			subject := contracts.JobSubject("demo", contracts.KeyTag("team-a"))
			if _, err := e.js.Publish(contractstest.Ctx(t), subject, []byte(`{"type":"toolbus.job.request.v1","job_id":"nope"}`)); err != nil {
				t.Fatal(err)
			}
			req, _ := e.keys.JobRequest(t, workertest.Job{Server: "demo", Tool: demoserver.ToolEcho, Args: `{"text":"x"}`, Expires: time.Now().Add(time.Hour)})
			workertest.PublishJob(t, e.js, req, subject)
			contractstest.Eventually(t, "both to be logged", func() bool {
				return strings.Contains(w.logs.String(), `"status":"invalid"`) && len(logLines(t, w.logs, req.JobID())) > 0
			})
			want := "deferred"
			if late {
				want = "no_record"
				workertest.Drained(t, e.js, "demo")
			}
			if l := logLines(t, w.logs, req.JobID()); l[0]["status"] != want {
				t.Errorf("a message without a record: %v, want %s", l, want)
			}
			if n := e.up.Stats().Requests; n != 0 {
				t.Errorf("the upstream saw %d calls", n)
			}
		})
	}
}

// One key's queued jobs do not hold another key's back: a worker runs at
// most its share of one key's jobs on a server (half the server's
// max_concurrency here), so another key's job runs at once although many of
// the first key's were queued before it.
func TestJobs_FairSharesBetweenKeys(t *testing.T) {
	t.Parallel()
	e := setup(t, func(f *config.File) {
		f.MCPServers["demo"].MaxConcurrency = 4
		f.Worker.DrainTimeout = config.Duration(100 * time.Millisecond)
	})
	e.startWorker(t, "w1")
	const queued = 40
	for range queued {
		e.submit(t, workertest.Job{Server: "demo", Tool: demoserver.ToolSlow, Args: `{"ms":120000}`, KeyID: "a", Timeout: 2 * time.Minute})
	}
	contractstest.Eventually(t, "key a to run its share", func() bool { return e.up.Stats().Running == 2 })
	_, key := e.submit(t, workertest.Job{Server: "demo", Tool: demoserver.ToolEcho, Args: `{"text":"b"}`, KeyID: "b"})
	if rec := e.terminal(t, key); rec.Status != contracts.JobSucceeded || rec.Attempts != 1 {
		t.Fatalf("key b's job behind %d of key a's: %s %+v", queued, rec.Status, rec.Error)
	}
	if s := e.up.Stats(); s.MaxRunning > 3 {
		t.Errorf("%d calls ran at once, want at most key a's share (2) and key b's job", s.MaxRunning)
	}
}
