package pool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/telemetry"
	"github.com/toolbus/toolbus/worker/handler"
	"github.com/toolbus/toolbus/worker/internal/lifecycle"
	"github.com/toolbus/toolbus/worker/jobs"
	workermetrics "github.com/toolbus/toolbus/worker/metrics"
	"github.com/toolbus/toolbus/worker/upstream"
)

// Timeouts of the lifecycle.
const (
	// flushTimeout bounds Start's wait for the server to register the
	// subscriptions when Start's context has no deadline.
	flushTimeout = 5 * time.Second
	// cancelGrace is how long Stop waits, after cancelling the calls that
	// outlived the drain timeout, for them to send their replies.
	cancelGrace = 2 * time.Second
	// DefaultQueueWait is how long a request waits for a call slot.
	DefaultQueueWait = 5 * time.Second
	// headerTimeoutMargin is added to the longest server max_timeout to get
	// the upstream response header timeout.
	headerTimeoutMargin = 30 * time.Second
)

// Option adjusts a Pool.
type Option func(*options)

type options struct {
	servers   []string
	name      string
	upstream  *upstream.Options
	now       func() time.Time
	queue     int // waiting requests per server; -1 means as many as the server's slots
	queueWait time.Duration
	noJobs    bool
	svcConn   *nats.Conn
	// breaker.Failures 0 turns the circuit breakers off.
	breaker BreakerConfig
	metrics *workermetrics.Metrics // WithTelemetry
	tracer  *telemetry.Tracer
}

// WithServers limits the pool to some servers, overriding worker.servers.
func WithServers(names ...string) Option {
	return func(o *options) { o.servers = names }
}

// WithName sets the name the pool answers pings with (default worker.name,
// else host name and process id).
func WithName(name string) Option {
	return func(o *options) { o.name = name }
}

// WithUpstreamOptions replaces the upstream pool options derived from the
// configuration (worker.max_clients, worker.client_idle_ttl). Logger is
// always the pool's.
func WithUpstreamOptions(u upstream.Options) Option {
	return func(o *options) { o.upstream = &u }
}

// WithQueue bounds the requests that wait for a slot: at most depth per
// server, each for at most wait, after which it is answered overloaded.
// depth 0 answers overloaded as soon as every slot is busy. The default is
// a depth equal to the calls the worker can run on the server at once (the
// server's max_concurrency, at most worker.max_concurrency) and
// DefaultQueueWait.
func WithQueue(depth int, wait time.Duration) Option {
	return func(o *options) { o.queue, o.queueWait = depth, wait }
}

// WithServiceConn puts the worker's micro service - the call, list, rpc and
// ping endpoints, where requests come in - on a connection of its own, which
// must carry nothing else. Stop can then tell exactly when the endpoints have
// handed on every request NATS delivered before they unsubscribed (the
// connection has no subscription left), so that a rolling restart loses no
// request. The pool does not close it. Default: the pool's connection, where
// Stop can only wait for the server to process the unsubscriptions.
func WithServiceConn(nc *nats.Conn) Option {
	return func(o *options) { o.svcConn = nc }
}

// WithBreaker sets the per-server circuit breakers (see BreakerConfig),
// overriding worker.breaker: once a server's calls fail upstream often
// enough, from enough distinct gateway keys, calls to it are refused at once
// for the cooldown, then one probe call decides whether it is back.
// Failures 0 turns the breakers off; a zero Window means no window, a zero
// MinCallers one key.
func WithBreaker(c BreakerConfig) Option {
	return func(o *options) { o.breaker = c }
}

// breakerConfig is worker.breaker as a BreakerConfig (defaults where unset:
// cfg may not be normalized).
func breakerConfig(b config.Breaker) BreakerConfig {
	c := BreakerConfig{Failures: b.Failures, Cooldown: b.Cooldown.D(), Window: b.Window.D(), MinCallers: b.MinCallers}
	switch {
	case c.Failures < 0:
		return BreakerConfig{}
	case c.Failures == 0:
		c.Failures = DefaultBreakerFailures
	}
	if c.Cooldown <= 0 {
		c.Cooldown = DefaultBreakerCooldown
	}
	if c.Window <= 0 {
		c.Window = DefaultBreakerWindow
	}
	if c.MinCallers <= 0 {
		c.MinCallers = DefaultBreakerMinCallers
	}
	return c
}

// WithoutJobs leaves async jobs to other workers: the pool neither creates
// the jobs infrastructure nor consumes jobs.
func WithoutJobs() Option {
	return func(o *options) { o.noJobs = true }
}

// WithClock sets the clock used to check seal expiry (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// Pool is a worker process's consumers: for each server it serves it takes
// tools/call and tools/list requests from NATS in the workers' queue group,
// runs them with bounded concurrency and replies, and runs the server's
// async jobs within the same bounds. It answers pings too. Requests come in
// through a NATS micro service (ServiceName), so the workers are listed with
// their endpoints and counters by `nats micro ls|info|stats`.
type Pool struct {
	nc      *nats.Conn
	svcConn *nats.Conn    // the micro service's connection (nc by default)
	svc     micro.Service // set by Start
	log     zerolog.Logger
	h       *handler.Handler
	up      *upstream.Pool
	jobs    *jobs.Runner // nil with WithoutJobs
	name    string
	servers []string
	drain   time.Duration

	global    chan struct{}       // process-wide call slots
	limits    map[string]*limiter // per-server call slots and wait queue
	queueWait time.Duration

	// Calls run on callCtx, detached from Start's context so that a signal
	// does not cut them; Stop cancels it when the drain timeout passes.
	callCtx    context.Context
	cancelCall context.CancelFunc
	inflight   *lifecycle.Tracker
	runners    *runners // the goroutines calls run on

	metrics *workermetrics.Metrics // nil: none
	tracer  *telemetry.Tracer      // nil: no spans

	mu      sync.Mutex
	subs    []*nats.Subscription
	started bool
	stopped bool
}

// New returns a Pool for cfg's servers (worker.servers if set, else all) on
// nc, opening tokens with opener. Start it to take requests. cfg is
// normalized (config.Load, Normalize): its defaults are not applied again.
func New(cfg *config.File, nc *nats.Conn, opener *contracts.Opener, log zerolog.Logger, opts ...Option) (*Pool, error) {
	o := options{
		servers: cfg.Worker.Servers, name: cfg.Worker.Name, now: time.Now, queue: -1, queueWait: DefaultQueueWait,
		breaker: breakerConfig(cfg.Worker.Breaker),
	}
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case nc == nil:
		return nil, errors.New("worker pool: no NATS connection")
	case opener == nil:
		return nil, errors.New("worker pool: no opener (sealing private keys)")
	}
	servers := slices.Clone(o.servers)
	if len(servers) == 0 {
		servers = cfg.ServerNames()
	}
	slices.Sort(servers)
	servers = slices.Compact(servers)
	var unknown []string
	for _, s := range servers {
		if cfg.MCPServers[s] == nil {
			unknown = append(unknown, s)
		}
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("worker pool: unknown servers %q (configured: %q)", unknown, cfg.ServerNames())
	}
	if o.name == "" {
		host, _ := os.Hostname()
		o.name = fmt.Sprintf("%s-%d", host, os.Getpid())
	}

	var uo upstream.Options
	if o.upstream != nil {
		uo = *o.upstream
	} else {
		var longest time.Duration
		for _, s := range servers {
			longest = max(longest, cfg.MCPServers[s].MaxTimeout.D())
		}
		uo = upstream.Options{
			MaxClients:        cfg.Worker.MaxClients,
			MaxStdioProcesses: cfg.Worker.MaxStdioProcesses,
			IdleTTL:           cfg.Worker.ClientIdleTTL.D(),
			Transport:         upstream.NewHTTPTransport(longest + headerTimeoutMargin),
		}
	}
	uo.Logger = log
	uo.Notify = notifyFunc(nc, log)
	up := upstream.New(uo)

	globalSlots := cfg.Worker.MaxConcurrency
	if o.svcConn == nil {
		o.svcConn = nc
	}
	p := &Pool{
		nc:        nc,
		svcConn:   o.svcConn,
		log:       log,
		up:        up,
		name:      o.name,
		servers:   servers,
		drain:     cfg.Worker.DrainTimeout.D(),
		global:    make(chan struct{}, globalSlots),
		limits:    make(map[string]*limiter, len(servers)),
		queueWait: o.queueWait,
		inflight:  lifecycle.NewTracker(),
		runners:   newRunners(),
		metrics:   o.metrics,
		tracer:    o.tracer,
		h: handler.New(handler.Config{
			File: cfg, Opener: opener, Upstream: up, Logger: log, Now: o.now,
			Publish:   nc.Publish, // call events (see rpc.go)
			Subscribe: subscribeFunc(nc),
			Metrics:   o.metrics, Tracer: o.tracer,
		}),
	}
	if !o.noJobs {
		runner, err := jobs.New(jobs.Config{
			File: cfg, Servers: servers, Conn: nc, Opener: opener, Upstream: up,
			Acquire: p.acquireSlot, Free: p.freeSlots, Logger: log, Now: o.now,
			Metrics: o.metrics, Tracer: o.tracer,
		})
		if err != nil {
			_ = up.Close()
			return nil, err
		}
		p.jobs = runner
	}
	for _, s := range servers {
		n := cfg.MCPServers[s].MaxConcurrency
		depth := o.queue
		if depth < 0 {
			depth = min(n, globalSlots)
		}
		lim := &limiter{server: s, slots: make(chan struct{}, n), queue: make(chan struct{}, depth), timeout: cfg.MCPServers[s].Timeout.D()}
		if o.breaker.Failures > 0 {
			lim.breaker = newBreaker(o.breaker, o.now)
		}
		p.limits[s] = lim
	}
	o.metrics.SetSlots(p.slotStats)
	o.metrics.SetClients(p.clientStats)
	return p, nil
}

// JobsReady is closed once the jobs infrastructure exists and the jobs of
// every served server are being consumed (see package jobs); it is never
// closed with WithoutJobs.
func (p *Pool) JobsReady() <-chan struct{} {
	if p.jobs == nil {
		return nil
	}
	return p.jobs.Ready()
}

// Servers returns the servers the pool serves.
func (p *Pool) Servers() []string { return slices.Clone(p.servers) }

// Start registers the worker's micro service (ServiceName) with an endpoint
// for the call, list and rpc subjects of every served server (in the
// workers' queue group) and for the ping subject, and returns once the NATS
// server has registered them (at once if NATS is not connected yet: the
// subscriptions are sent when it connects). ctx bounds Start only: calls do
// not end with it (see Stop).
func (p *Pool) Start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started || p.stopped {
		return errors.New("worker pool: already started")
	}
	p.started = true
	p.callCtx, p.cancelCall = context.WithCancel(context.WithoutCancel(ctx))

	svc, err := micro.AddService(p.svcConn, p.serviceConfig())
	if err != nil {
		return fmt.Errorf("worker pool: register the %s service: %w", ServiceName, err)
	}
	p.svc = svc
	// The requests' subjects are endpoints of the service (in the workers'
	// queue group: counted in the service's stats and drained first by
	// Stop); the other subscriptions (every worker hears them) stay until
	// running calls end.
	subscribe := func(subject string, cb nats.MsgHandler) error {
		sub, err := p.nc.Subscribe(subject, cb)
		if err != nil {
			return fmt.Errorf("worker pool: subscribe %s: %w", subject, err)
		}
		p.subs = append(p.subs, sub)
		return nil
	}
	for _, s := range p.servers {
		for _, op := range handler.Ops {
			if err == nil {
				err = p.addEndpoint(svc, op.Subject(s), p.dispatcher(s, op))
			}
		}
	}
	if err == nil {
		err = p.subscribeBroadcasts(subscribe) // call cancellations and unsubscriptions (rpc.go)
	}
	if err == nil {
		// Last: a worker that answers pings (readiness) takes requests.
		err = p.addPing(svc)
	}
	if err == nil {
		err = p.flush(ctx)
	}
	if err == nil && p.jobs != nil {
		err = p.jobs.Start()
	}
	if err != nil {
		_ = svc.Stop()
		for _, sub := range p.subs {
			_ = sub.Unsubscribe()
		}
		p.subs = nil
		return err
	}
	p.log.Info().Strs("servers", p.servers).Str("worker", p.name).Str("service", ServiceName).Msg("worker pool started")
	return nil
}

// flush waits until the NATS server has registered the subscriptions, on
// each connection that is connected.
func (p *Pool) flush(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, flushTimeout)
		defer cancel()
	}
	conns := []*nats.Conn{p.nc}
	if p.svcConn != p.nc {
		conns = append(conns, p.svcConn)
	}
	for _, nc := range conns {
		if !nc.IsConnected() {
			continue
		}
		if err := nc.FlushWithContext(ctx); err != nil {
			return fmt.Errorf("worker pool: register subscriptions: %w", err)
		}
	}
	return nil
}

// limiter is one server's call slots, the queue of requests waiting for
// one, and the server's circuit breaker.
type limiter struct {
	server     string
	slots      chan struct{}
	queue      chan struct{}
	breaker    *breaker      // nil: none
	timeout    time.Duration // the server's own timeout (see outcomeOf)
	overloaded atomic.Uint64
}

// dispatcher takes the requests of one op of one server: an endpoint's
// requests. NATS runs an endpoint's callback (take) for one request at a
// time, so take never blocks: with the server's circuit open it answers
// upstream_error at once; with a free slot (in the server's and the
// process's limits) it hands the request to a runner; otherwise, if the
// server's wait queue has room, to a goroutine that waits for a slot up to
// queueWait (and at most half the request's budget); otherwise it answers
// overloaded at once. Nothing queues without bound. An overloaded answer
// always means the request reached no upstream. Each request's message is
// decoded once, where it is first needed: by the goroutine that runs it, or
// by the callback that refuses it.
type dispatcher struct {
	p      *Pool
	server string
	lim    *limiter
	op     *handler.Op
}

func (p *Pool) dispatcher(server string, op *handler.Op) *dispatcher {
	return &dispatcher{p: p, server: server, lim: p.limits[server], op: op}
}

func (d *dispatcher) decode(m *nats.Msg) *handler.Request {
	return d.op.Decode(m.Subject, m.Reply, contracts.Wire{Header: contracts.HeaderValue(m.Header[contracts.HeaderRequest]), Body: m.Data})
}

func (d *dispatcher) overloaded(in *handler.Request, e *contracts.Error, reason string) {
	d.lim.overloaded.Add(1)
	d.p.metrics.Overloaded(d.server, reason)
	d.p.log.Warn().Str("server", d.server).Str("reason", e.Message).Msg("overloaded")
	d.p.respond(in, nil, e)
}

func (d *dispatcher) noSlot(in *handler.Request) {
	d.overloaded(in, contracts.NewError(contracts.CodeOverloaded, "worker at its concurrency limit for server %q", d.server), workermetrics.RejectNoSlot)
}

func (d *dispatcher) circuitOpen(in *handler.Request, left time.Duration) {
	d.p.metrics.Overloaded(d.server, workermetrics.RejectCircuitOpen)
	d.p.respond(in, nil, d.lim.breaker.refusal(d.server, left))
}

// take is the endpoint's callback. m is not kept: what take hands on is a
// request holding a copy of it.
func (d *dispatcher) take(m *nats.Msg) {
	p, lim := d.p, d.lim
	if m.Reply == "" {
		p.log.Warn().Str("server", d.server).Str("subject", m.Subject).Msg("request without a reply subject ignored")
		return
	}
	if !p.inflight.Add() {
		d.overloaded(d.decode(m), contracts.NewError(contracts.CodeOverloaded, "worker shutting down"), workermetrics.RejectStopping)
		return
	}
	// An open circuit refuses before the request takes or waits for a slot.
	if lim.breaker != nil {
		if refused, left := lim.breaker.check(); refused {
			p.inflight.Done()
			d.circuitOpen(d.decode(m), left)
			return
		}
	}
	r := &request{d: d, m: *m}
	// The request's trace context (from its NATS headers), the worker's
	// span and the wait for a slot (telemetry.go).
	r.rt = p.startRequest(p.callCtx, &r.m)
	if p.tryAcquire(lim) {
		p.runners.run(r)
		return
	}
	select {
	case lim.queue <- struct{}{}:
	default:
		p.inflight.Done()
		p.waited(&r.rt, d.server)
		r.rt.end()
		d.noSlot(d.decode(&r.m))
		return
	}
	go r.queued()
}

// request is one request on its way from its endpoint to a call slot and
// its reply: the one allocation dispatching it takes (a runner runs it as
// a task).
type request struct {
	d  *dispatcher
	m  nats.Msg
	rt requestTrace
}

// run runs the request, which holds a call slot (a runner's task).
func (r *request) run() {
	defer r.d.p.inflight.Done()
	r.serve(r.rt.ctx, r.d.decode(&r.m))
}

// queued waits for a call slot, then runs the request. The wait counts
// against the request's budget: it waits at most half of it, and runs with
// what is left, so that its answer still comes within the budget the
// ingress waits for.
func (r *request) queued() {
	d, p := r.d, r.d.p
	defer p.inflight.Done()
	in := d.decode(&r.m)
	wait, budget := p.queueWait, in.Budget()
	if budget > 0 {
		wait = min(wait, budget/2)
	}
	ok := p.waitAcquire(d.lim, wait)
	<-d.lim.queue
	if !ok {
		p.waited(&r.rt, d.server)
		r.rt.end()
		d.noSlot(in)
		return
	}
	ctx := r.rt.ctx
	if budget > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, r.rt.received.Add(budget))
		defer cancel()
	}
	r.serve(ctx, in)
}

// serve handles in, which holds a call slot, and replies.
func (r *request) serve(ctx context.Context, in *handler.Request) {
	d, p, lim := r.d, r.d.p, r.d.lim
	defer r.rt.end()
	// The slot is free again before the reply goes out, so a caller
	// holding its answer never finds its own call still in the slot.
	held := true
	release := func() {
		if held {
			held = false
			p.release(lim)
		}
	}
	defer release()
	p.waited(&r.rt, d.server)
	probe := false
	if lim.breaker != nil {
		ok, isProbe, left := lim.breaker.admit()
		if !ok {
			release()
			d.circuitOpen(in, left)
			return
		}
		probe = isProbe
	}
	payload, e := p.h.Handle(ctx, in)
	if lim.breaker != nil {
		hdr := in.Msg.Header()
		p.breakerDone(d.server, lim.breaker, probe, outcomeOf(e, in.Budget() >= lim.timeout), hdr.KeyID)
	}
	release()
	p.respond(in, payload, e)
	telemetry.Step(ctx, telemetry.StepReplyPublished)
}

// breakerDone records a call's outcome in the server's breaker and logs
// the circuit opening and closing.
func (p *Pool) breakerDone(server string, b *breaker, probe bool, o outcome, key string) {
	switch b.done(probe, o, key) {
	case opened:
		p.log.Warn().Str("server", server).Int("failures", b.failures).Int("min_callers", b.minCallers).Dur("cooldown", b.cooldown).
			Bool("probe", probe).Msg("circuit opened: calls to the server fail at once")
	case closed:
		p.log.Info().Str("server", server).Msg("circuit closed: the server answers again")
	}
}

// tryAcquire takes a server slot and a process slot if both are free.
func (p *Pool) tryAcquire(lim *limiter) bool {
	select {
	case lim.slots <- struct{}{}:
	default:
		return false
	}
	select {
	case p.global <- struct{}{}:
		return true
	default:
		<-lim.slots
		return false
	}
}

// waitAcquire takes a server slot, then a process slot, waiting up to
// wait. (Every holder of a process slot holds a server slot and is
// running, so waiting in this order cannot deadlock.)
func (p *Pool) waitAcquire(lim *limiter, wait time.Duration) bool {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case lim.slots <- struct{}{}:
	case <-timer.C:
		return false
	case <-p.callCtx.Done():
		return false
	}
	select {
	case p.global <- struct{}{}:
		return true
	case <-timer.C:
	case <-p.callCtx.Done():
	}
	<-lim.slots
	return false
}

// acquireSlot takes a server slot, then a process slot, for an async job,
// waiting until both are free or ctx ends; with ctx ended already it takes
// them only if both are free. (Jobs wait in JetStream, not here: the
// consumer asks for as many jobs as freeSlots says it can start.)
func (p *Pool) acquireSlot(ctx context.Context, server string) (func(), bool) {
	lim := p.limits[server]
	if p.tryAcquire(lim) {
		return func() { p.release(lim) }, true
	}
	if ctx.Err() != nil {
		return nil, false
	}
	select {
	case lim.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, false
	}
	select {
	case p.global <- struct{}{}:
		return func() { p.release(lim) }, true
	case <-ctx.Done():
		<-lim.slots
		return nil, false
	}
}

// freeSlots is how many calls on server could start now.
func (p *Pool) freeSlots(server string) int {
	lim := p.limits[server]
	return max(0, min(cap(lim.slots)-len(lim.slots), cap(p.global)-len(p.global)))
}

func (p *Pool) release(lim *limiter) {
	<-p.global
	<-lim.slots
}

// respond publishes the reply to in (wire format v2: its header, and
// payload as the body, unchanged), or e when set; nothing when in has no
// request id to answer to. A reply larger than the connection's maximum
// payload is replaced by an error, so the caller is not left waiting.
func (p *Pool) respond(in *handler.Request, payload json.RawMessage, e *contracts.Error) {
	w, ok := in.Encode(payload, e)
	if !ok {
		return
	}
	// Publish on the connection: the subscription may be drained by now.
	err := p.nc.PublishMsg(replyMsg(in.Reply, w))
	if errors.Is(err, nats.ErrMaxPayload) {
		size, limit := len(w.Body)+len(w.Header), p.nc.MaxPayload()
		p.log.Warn().Int("bytes", size).Int64("max_payload", limit).Msg("reply over the NATS max payload")
		w, _ = in.Encode(nil, contracts.NewError(contracts.CodeUpstreamError,
			"the result (%d bytes) exceeds the bus's maximum message size (%d bytes)", size, limit))
		err = p.nc.PublishMsg(replyMsg(in.Reply, w))
	}
	if err != nil {
		p.log.Warn().Str("error", err.Error()).Msg("reply not sent")
	}
}

// replyMsg is the NATS message of reply w to subject.
func replyMsg(subject string, w contracts.Wire) *nats.Msg {
	return &nats.Msg{Subject: subject, Header: nats.Header{contracts.HeaderReply: {w.Header}}, Data: w.Body}
}

// Stop shuts the pool down, in these phases:
//
//  1. stopTakingRequests: it stops the micro service - its endpoints
//     unsubscribe (drain), so no new request reaches this worker (NATS
//     routes it to another worker of the queue group, or answers a fast
//     no_workers), and pings stop counting it - and waits until the
//     endpoints have handed on the requests already delivered. The jobs
//     runner stops taking jobs at the same time and drains alongside.
//  2. drainCalls: it waits for running calls, up to worker.drain_timeout
//     or ctx, whichever ends first; calls still running then are cancelled
//     (their callers get an error reply), with a short grace for their
//     replies.
//  3. closeBroadcasts: it closes the subscriptions every worker hears (call
//     cancellations, unsubscriptions).
//  4. closeUpstreams: it waits for the jobs runner, closes the upstream
//     clients, and waits (briefly) for what that failed to reply.
//  5. stopRunners: it ends the goroutines calls ran on.
//
// It returns an error when calls or jobs had to be cancelled. Stop is safe
// to call more than once.
func (p *Pool) Stop(ctx context.Context) error {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return nil
	}
	p.stopped = true
	svc, subs := p.svc, p.subs
	p.subs = nil
	p.mu.Unlock()

	drainCtx, cancel := context.WithTimeout(ctx, p.drain)
	defer cancel()
	jobsStopped := p.stopTakingRequests(drainCtx, svc)
	errs := []error{p.drainCalls(drainCtx)}
	p.closeBroadcasts(subs)
	errs = append(errs, p.closeUpstreams(jobsStopped)...)
	p.stopRunners()
	p.log.Info().Str("worker", p.name).Msg("worker pool stopped")
	return errors.Join(errs...)
}

// stopTakingRequests is Stop's first phase. It returns the jobs runner's
// Stop result, delivered once the runner has drained within drainCtx.
func (p *Pool) stopTakingRequests(drainCtx context.Context, svc micro.Service) <-chan error {
	jobsStopped := make(chan error, 1)
	if p.jobs != nil {
		go func() { jobsStopped <- p.jobs.Stop(drainCtx) }()
	} else {
		jobsStopped <- nil
	}
	if svc != nil {
		if err := svc.Stop(); err != nil {
			p.log.Warn().Str("error", err.Error()).Msg("stopping the worker service")
		}
		if err := p.waitServiceDrained(drainCtx); err != nil {
			p.log.Warn().Str("error", err.Error()).Msg("draining the worker service")
		}
	}
	return jobsStopped
}

// drainCalls is Stop's second phase: it waits for the running calls until
// drainCtx ends, then cancels those left and gives them cancelGrace to
// reply. The error says how many it cancelled.
func (p *Pool) drainCalls(drainCtx context.Context) error {
	var err error
	if running := p.inflight.CloseAndWait(drainCtx); running > 0 {
		p.log.Warn().Int("calls", running).Msg("drain timeout: cancelling running calls")
		err = fmt.Errorf("worker pool: %d calls still running at the drain timeout were cancelled", running)
		if p.cancelCall != nil {
			p.cancelCall()
		}
		graceCtx, cancelGraceCtx := context.WithTimeout(context.Background(), cancelGrace)
		p.inflight.CloseAndWait(graceCtx)
		cancelGraceCtx()
	}
	if p.cancelCall != nil {
		p.cancelCall()
	}
	return err
}

// closeBroadcasts is Stop's third phase.
func (p *Pool) closeBroadcasts(subs []*nats.Subscription) {
	for _, sub := range subs {
		_ = sub.Unsubscribe()
	}
}

// closeUpstreams is Stop's fourth phase: the jobs runner's result, the
// upstream clients closed, and a last wait for the calls that closing
// them failed.
func (p *Pool) closeUpstreams(jobsStopped <-chan error) []error {
	errs := []error{<-jobsStopped, p.up.Close()}
	graceCtx, cancelGraceCtx := context.WithTimeout(context.Background(), cancelGrace)
	defer cancelGraceCtx()
	if running := p.inflight.CloseAndWait(graceCtx); running > 0 {
		p.log.Error().Int("calls", running).Msg("calls still running after the upstream clients closed")
	}
	return errs
}

// stopRunners is Stop's last phase: the call goroutines end (an idle one
// at once, a busy one when its call returns), waited for cancelGrace.
func (p *Pool) stopRunners() {
	graceCtx, cancelGraceCtx := context.WithTimeout(context.Background(), cancelGrace)
	defer cancelGraceCtx()
	p.runners.stop(graceCtx)
}
