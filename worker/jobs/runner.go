package jobs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/telemetry"
	"github.com/toolbus/toolbus/worker/internal/admit"
	"github.com/toolbus/toolbus/worker/internal/lifecycle"
	workermetrics "github.com/toolbus/toolbus/worker/metrics"
	"github.com/toolbus/toolbus/worker/upstream"
)

// Timing of the lifecycle.
const (
	// setupAttemptTimeout bounds one attempt at creating the infrastructure
	// or a consumer.
	setupAttemptTimeout = 10 * time.Second
	// setupBackoffMin and setupBackoffMax bound the wait between attempts
	// while JetStream is not ready.
	setupBackoffMin = 100 * time.Millisecond
	setupBackoffMax = 5 * time.Second
)

// AcquireFunc takes a call slot for server (the same slots synchronous calls
// take), waiting until one is free or ctx ends (with ctx already ended it
// takes a slot only if one is free). It returns the function that gives the
// slot back, or false when it got none.
type AcquireFunc func(ctx context.Context, server string) (release func(), ok bool)

// Config is what a Runner needs.
type Config struct {
	// File holds the servers (mcp_servers) and the jobs section.
	File *config.File
	// Servers are the servers whose jobs this worker runs.
	Servers []string
	// Conn is the NATS connection (JetStream and the cancel subscription).
	Conn *nats.Conn
	// Opener opens the sealed tokens of jobs.
	Opener *contracts.Opener
	// Upstream makes the calls.
	Upstream *upstream.Pool
	// Acquire takes a call slot; nil means jobs are not limited.
	Acquire AcquireFunc
	// Free reports how many call slots for server Acquire would give at
	// once; the intake asks for that many jobs (see intake.go). nil means
	// as many as one pull request takes.
	Free func(server string) int
	// Logger receives one line per job delivery and lifecycle events.
	Logger zerolog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Metrics, if set, counts deliveries, upstream calls, queue time and
	// pending jobs; Tracer, if set, records a job's queue wait and upstream
	// call in the trace its submitter started (telemetry.go).
	Metrics *workermetrics.Metrics
	Tracer  *telemetry.Tracer
}

// Runner takes the jobs of its servers from JetStream and runs them. Start
// it once and Stop it once.
type Runner struct {
	file    *config.File
	jobs    config.Jobs
	servers []string
	nc      *nats.Conn
	js      jetstream.JetStream
	admit   *admit.Admitter // no replay guard: a redelivered job opens its token again
	up      *upstream.Pool
	acquire AcquireFunc
	log     zerolog.Logger
	now     func() time.Time
	beat    time.Duration // heartbeat period: ack wait / 3

	metrics *workermetrics.Metrics // nil: none
	tracer  *telemetry.Tracer      // nil: no spans
	shares  *keyShares             // each key's share of the jobs running here (fairness.go)

	// freeSlots is Config.Free (nil: unlimited).
	freeSlots func(server string) int

	// life ends with Stop: supervisors stop and callbacks stop waiting.
	life     context.Context
	stopLife context.CancelFunc
	// runCtx is the context of running jobs; Stop cancels it (cause
	// errStopping) when its drain ends with jobs still running.
	runCtx     context.Context
	cancelRuns context.CancelCauseFunc

	setupMu sync.Mutex // one Setup at a time
	infraMu sync.Mutex
	infra   *Infra

	ready     chan struct{}
	readyMu   sync.Mutex
	consuming map[string]bool

	local       *registry          // jobs running on this worker
	callbacks   *lifecycle.Tracker // consumer callbacks in progress
	runs        *lifecycle.Tracker // running jobs
	supervisors sync.WaitGroup

	mu        sync.Mutex
	started   bool
	stopped   bool
	cancelSub *nats.Subscription
}

// New returns a Runner. It does not touch NATS; Start does.
func New(c Config) (*Runner, error) {
	switch {
	case c.File == nil:
		return nil, errors.New("jobs: no configuration")
	case c.Conn == nil:
		return nil, errors.New("jobs: no NATS connection")
	case c.Opener == nil:
		return nil, errors.New("jobs: no opener")
	case c.Upstream == nil:
		return nil, errors.New("jobs: no upstream pool")
	}
	for _, s := range c.Servers {
		if c.File.MCPServers[s] == nil {
			return nil, fmt.Errorf("jobs: unknown server %q", s)
		}
	}
	js, err := jetstream.New(c.Conn)
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Acquire == nil {
		c.Acquire = func(context.Context, string) (func(), bool) { return func() {}, true }
	}
	j := c.File.Jobs
	if j.AckWait <= 0 || j.MaxAttempts <= 0 || len(j.Backoff) == 0 {
		return nil, errors.New("jobs: the jobs section is not normalized")
	}
	r := &Runner{
		file:      c.File,
		jobs:      j,
		servers:   slices.Clone(c.Servers),
		nc:        c.Conn,
		js:        js,
		admit:     &admit.Admitter{File: c.File, Opener: c.Opener, Metrics: c.Metrics, Now: c.Now},
		up:        c.Upstream,
		acquire:   c.Acquire,
		freeSlots: c.Free,
		log:       c.Logger,
		now:       c.Now,
		beat:      max(j.AckWait.D()/3, 10*time.Millisecond),
		ready:     make(chan struct{}),
		consuming: make(map[string]bool),
		local:     newRegistry(),
		callbacks: lifecycle.NewTracker(),
		runs:      lifecycle.NewTracker(),
		metrics:   c.Metrics,
		tracer:    c.Tracer,
	}
	r.shares = &keyShares{limit: func(server string) int { return maxRunningPerKey(c.File, server) }, running: map[shareKey]int{}}
	c.Metrics.SetPending(r.pending)
	r.life, r.stopLife = context.WithCancel(context.Background())
	r.runCtx, r.cancelRuns = context.WithCancelCause(context.Background())
	return r, nil
}

// Ready is closed once the infrastructure exists and every served server's
// jobs are being consumed.
func (r *Runner) Ready() <-chan struct{} { return r.ready }

// Start subscribes to job cancellations and starts, in the background,
// creating the infrastructure and consuming each served server's jobs,
// retrying with backoff while JetStream is not ready. It returns without
// waiting for JetStream (see Ready); an error means the cancel subscription
// failed.
func (r *Runner) Start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started || r.stopped {
		return errors.New("jobs: already started")
	}
	r.started = true
	sub, err := r.nc.Subscribe(contracts.AllCancelsSubject, r.onCancel)
	if err != nil {
		return fmt.Errorf("jobs: subscribe %s: %w", contracts.AllCancelsSubject, err)
	}
	r.cancelSub = sub
	r.supervisors.Go(r.supervise)
	return nil
}

// supervise creates the infrastructure, then keeps one consumer per served
// server running until Stop.
func (r *Runner) supervise() {
	if !r.retry("jobs infrastructure", func(ctx context.Context) error { return r.setupInfra(ctx, false) }) {
		return
	}
	r.log.Info().Str("stream", contracts.JobsStream).Str("bucket", contracts.JobsBucket).Msg("jobs infrastructure ready")
	if len(r.servers) == 0 {
		close(r.ready)
	}
	for _, s := range r.servers {
		r.supervisors.Go(func() { r.consume(s) })
	}
}

// retry runs step until it succeeds, waiting with backoff between attempts;
// it gives up (false) when Stop is called. The first failure is logged as a
// warning, later ones at debug level with a warning now and then.
func (r *Runner) retry(what string, step func(context.Context) error) bool {
	backoff := setupBackoffMin
	for failures := 0; ; failures++ {
		ctx, cancel := context.WithTimeout(r.life, setupAttemptTimeout)
		err := step(ctx)
		cancel()
		if err == nil {
			return true
		}
		if r.life.Err() != nil {
			return false
		}
		ev := r.log.Debug()
		if failures%20 == 0 { // the first failure, then about every minute and a half
			ev = r.log.Warn()
		}
		ev.Str("error", err.Error()).Dur("retry_in", backoff).Msgf("%s not ready", what)
		select {
		case <-r.life.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, setupBackoffMax)
	}
}

// setupInfra creates the infrastructure; when it exists already, only
// force creates it again.
func (r *Runner) setupInfra(ctx context.Context, force bool) error {
	r.setupMu.Lock()
	defer r.setupMu.Unlock()
	if r.stores() != nil && !force {
		return nil
	}
	infra, err := Setup(ctx, r.js, r.jobs)
	if err != nil {
		return err
	}
	r.infraMu.Lock()
	r.infra = infra
	r.infraMu.Unlock()
	return nil
}

func (r *Runner) stores() *Infra {
	r.infraMu.Lock()
	defer r.infraMu.Unlock()
	return r.infra
}

// consume keeps server's consumer running until Stop: when consuming ends
// on its own (the consumer or the stream was deleted, the connection
// closed), it sets everything up again.
func (r *Runner) consume(server string) {
	limit := r.file.MCPServers[server].MaxConcurrency
	for again := false; ; again = true {
		var cons jetstream.Consumer
		ok := r.retry("jobs consumer of "+server, func(ctx context.Context) error {
			if again {
				if err := r.setupInfra(ctx, true); err != nil {
					return err
				}
			}
			var err error
			cons, err = r.js.CreateOrUpdateConsumer(ctx, contracts.JobsStream, ConsumerConfig(server, limit, r.jobs))
			return err
		})
		if !ok {
			return
		}
		r.log.Info().Str("server", server).Str("consumer", contracts.JobsConsumer(server)).Msg("consuming jobs")
		r.markConsuming(server)
		began := time.Now()
		err := r.pull(server, cons)
		if r.life.Err() != nil {
			return
		}
		r.log.Warn().Str("server", server).Str("error", err.Error()).Msg("jobs consumer ended; setting it up again")
		// A consumer that fails at once is not set up again in a busy loop.
		select {
		case <-r.life.Done():
			return
		case <-time.After(setupBackoffMin - time.Since(began)):
		}
	}
}

func (r *Runner) markConsuming(server string) {
	r.readyMu.Lock()
	defer r.readyMu.Unlock()
	if len(r.consuming) == len(r.servers) {
		return
	}
	r.consuming[server] = true
	if len(r.consuming) == len(r.servers) {
		close(r.ready)
	}
}

// errStopping is the cause of the cancellation of jobs still running when
// Stop's drain ends.
var errStopping = errors.New("the worker is stopping")

// Stop shuts the runner down in two phases: it stops taking jobs (a job
// waiting for a slot is nak'ed, so another worker takes it), then waits for
// running jobs until ctx ends. Jobs still running then are cancelled: their
// records go back to queued and their messages are nak'ed for another
// worker. Stop returns once every goroutine of the runner has ended (a
// cancelled job's last writes are bounded by their own timeouts); the error
// reports jobs it had to cancel. Stop is safe to call more than once.
func (r *Runner) Stop(ctx context.Context) error {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return nil
	}
	r.stopped = true
	r.mu.Unlock()

	r.stopLife()
	r.supervisors.Wait()
	r.callbacks.CloseAndWait(context.Background()) // they return at once once life has ended

	var err error
	if running := r.runs.CloseAndWait(ctx); running > 0 {
		r.log.Warn().Int("jobs", running).Msg("drain timeout: cancelling running jobs; they go back to the queue")
		err = fmt.Errorf("jobs: %d jobs still running at the drain timeout were put back in the queue", running)
		r.cancelRuns(errStopping)
		r.runs.CloseAndWait(context.Background())
	}
	r.cancelRuns(errStopping)
	r.mu.Lock()
	if r.cancelSub != nil {
		_ = r.cancelSub.Unsubscribe()
	}
	r.mu.Unlock()
	return err
}
