package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/worker/demoserver"
	"github.com/toolbus/toolbus/worker/internal/workertest"
	"github.com/toolbus/toolbus/worker/jobs"
)

// processTimeout bounds the waits of the process tests, which run several
// jobs of a second or more each.
const processTimeout = 30 * time.Second

// buildWorker compiles this command into a temporary directory; in -short
// mode it skips the test instead.
func buildWorker(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the worker binary")
	}
	bin := filepath.Join(t.TempDir(), "worker")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// jobsSetup is what the process tests share: NATS, an upstream, a worker
// configuration and key, and the ingress's side of the jobs infrastructure.
type jobsSetup struct {
	nats *contractstest.NATS
	js   jetstream.JetStream
	kv   jetstream.KeyValue
	up   *workertest.Upstream
	keys workertest.Keys
	env  []string
	cfg  string
}

func newJobsSetup(t *testing.T, extra string) *jobsSetup {
	t.Helper()
	s := &jobsSetup{nats: contractstest.StartNATS(t), up: workertest.StartUpstream(t, demoserver.Options{})}
	key, err := contracts.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	s.keys = workertest.Keys{Sealer: contracts.NewSealer(key.Public(), 0)}
	s.env = []string{"TOOLBUS_SEAL_PRIVATE_KEYS=" + key.Secret()}
	text := fmt.Sprintf("mcp_servers:\n  demo:\n    url: %s\nnats:\n  url: %s\n%s", s.up.URL, s.nats.URL, extra)
	s.cfg = writeConfig(t, text)
	cfg, _, err := loadConfig(s.cfg, "", false, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if s.js, err = jetstream.New(s.nats.Connect(t)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), processTimeout)
	defer cancel()
	infra, err := jobs.Setup(ctx, s.js, cfg.Jobs)
	if err != nil {
		t.Fatal(err)
	}
	s.kv = infra.Records
	return s
}

func (s *jobsSetup) waitAll(t *testing.T, what string, keys []string, cond func(*contracts.JobRecord) bool) []*contracts.JobRecord {
	t.Helper()
	recs := make([]*contracts.JobRecord, len(keys))
	deadline := time.Now().Add(processTimeout)
	for {
		ok := true
		for i, key := range keys {
			recs[i] = s.record(t, key)
			ok = ok && recs[i] != nil && cond(recs[i])
		}
		if ok {
			return recs
		}
		if time.Now().After(deadline) {
			for _, r := range recs {
				t.Logf("%+v", r)
			}
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// record reads a job record; nil when there is none or NATS does not
// answer (it may be restarting).
func (s *jobsSetup) record(t *testing.T, key string) *contracts.JobRecord {
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	e, err := s.kv.Get(ctx, key)
	if err != nil {
		return nil
	}
	rec, err := contracts.DecodeJobRecord(e.Value())
	if err != nil {
		t.Fatalf("record %s: %v", e.Value(), err)
	}
	return rec
}

// streamEmpty waits until every job message has been acknowledged.
func (s *jobsSetup) streamEmpty(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(processTimeout)
	for {
		stream, err := s.js.Stream(t.Context(), contracts.JobsStream)
		if err == nil && stream.CachedInfo().State.Msgs == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the jobs stream still holds messages (%v)", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Two worker processes run slow jobs; one is killed (SIGKILL) while it runs
// some. Every job still succeeds, once recorded; the killed worker's jobs
// ran again on the other (at least once each, as documented), and nothing
// is left in the stream.
func TestProcesses_JobsSurviveAKilledWorker(t *testing.T) {
	t.Parallel()
	bin := buildWorker(t)
	// Each worker runs at most two calls at once, so with four jobs running
	// each worker runs exactly two.
	s := newJobsSetup(t, "worker:\n  max_concurrency: 2\n  drain_timeout: 5s\njobs:\n  ack_wait: 1s\n  backoff: [100ms]\n")
	w1 := contractstest.StartProcess(t, bin, s.env, "--config", s.cfg)
	w2 := contractstest.StartProcess(t, bin, s.env, "--config", s.cfg)
	w1.WaitLog(t, "consuming jobs", processTimeout)
	w2.WaitLog(t, "consuming jobs", processTimeout)

	const token = "Bearer killed-worker-user"
	const n = 4
	keys := make([]string, n)
	for i := range keys {
		_, keys[i] = s.keys.SubmitJob(t, s.js, s.kv, workertest.Job{
			Server: "demo", Tool: demoserver.ToolSlow, Args: `{"ms":1500}`, Token: token, Timeout: 10 * time.Second,
		})
	}
	s.waitAll(t, "every job to run", keys, func(r *contracts.JobRecord) bool { return r.Status == contracts.JobRunning })
	contractstest.Eventually(t, "every job's upstream call", func() bool { return s.up.Stats().Running == n })
	w1.Kill(t)

	recs := s.waitAll(t, "every job to end", keys, func(r *contracts.JobRecord) bool { return r.Status.Terminal() })
	again := 0
	for _, r := range recs {
		if r.Status != contracts.JobSucceeded || workertest.Text(t, r.Result) != "slept 1.5s" {
			t.Errorf("job %s: %s %+v", r.ID, r.Status, r.Error)
		}
		switch r.Attempts {
		case 1:
		case 2:
			again++
		default:
			t.Errorf("job %s ran %d times", r.ID, r.Attempts)
		}
	}
	if again != 2 {
		t.Errorf("%d jobs ran again, want the killed worker's 2", again)
	}
	s.streamEmpty(t)
	if st := s.up.Stats(); st.Started != n+2 {
		t.Errorf("the upstream ran %d calls, want %d (the killed worker's jobs twice)", st.Started, n+2)
	}
	for _, w := range []*contractstest.Process{w1, w2} {
		if strings.Contains(w.Stderr.String(), "killed-worker-user") || strings.Contains(w.Stdout.String(), "killed-worker-user") {
			t.Error("the token is in a worker's logs")
		}
	}
}

// Jobs queued while no worker runs survive a restart of the NATS server
// (file store), and a worker started afterwards runs them all; a worker
// running through a restart goes on taking jobs.
func TestProcesses_JobsSurviveANATSRestart(t *testing.T) {
	t.Parallel()
	bin := buildWorker(t)
	s := newJobsSetup(t, "")
	submit := func(batch int) []string {
		keys := make([]string, 5)
		for i := range keys {
			_, keys[i] = s.keys.SubmitJob(t, s.js, s.kv, workertest.Job{
				Server: "demo", Tool: demoserver.ToolEcho, Args: fmt.Sprintf(`{"text":"job %d.%d"}`, batch, i), Token: "Bearer u",
			})
		}
		return keys
	}
	check := func(batch int, keys []string) {
		t.Helper()
		recs := s.waitAll(t, "every job to end", keys, func(r *contracts.JobRecord) bool { return r.Status.Terminal() })
		for i, r := range recs {
			if r.Status != contracts.JobSucceeded || workertest.Text(t, r.Result) != fmt.Sprintf("job %d.%d", batch, i) || r.Attempts != 1 {
				t.Errorf("job %d.%d: %+v %+v", batch, i, r, r.Error)
			}
		}
		s.streamEmpty(t)
	}

	queued := submit(1)
	s.nats.Restart(t)
	w := contractstest.StartProcess(t, bin, s.env, "--config", s.cfg)
	check(1, queued)

	s.nats.Restart(t)
	w.WaitLog(t, "NATS reconnected", processTimeout)
	check(2, submit(2))
}
