// Package metrics holds a worker's Prometheus collectors: requests by op,
// server, tool and code; upstream call latency and errors by class; sealed
// token refusals; overload rejections; call slots in use and requests
// waiting for one; time spent waiting; and async jobs (deliveries by
// outcome, the consumer's pending count).
//
// Label values come from bounded sets only: ops (contracts.OpCall, OpList,
// the relayed RPC methods, jobs), configured server names, known tool names
// (telemetry.ToolLabels), error codes and fixed reasons. A nil *Metrics is
// valid and records nothing.
package metrics

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/telemetry"
)

const subsystem = "worker"

// Overload rejection reasons (the reason label of
// toolbus_worker_overload_rejections_total).
const (
	RejectNoSlot      = "no_slot"      // every call slot busy and the wait queue full, or the wait timed out
	RejectStopping    = "stopping"     // the worker is shutting down
	RejectCircuitOpen = "circuit_open" // the server's circuit breaker is open
)

// Queue kinds (the kind label of toolbus_worker_queue_wait_seconds).
const (
	QueueRequest = "request" // a NATS request waiting for a call slot on this worker
	QueueJob     = "job"     // an async job, from its submission to its start
)

// OpJob is the op label of async jobs.
const OpJob = "job"

// SlotStats is one server's call slots, for the gauges.
type SlotStats struct {
	Server                  string
	Running, Waiting, Slots int
}

// Metrics are one worker's collectors.
type Metrics struct {
	tools *telemetry.ToolLabels

	requests       *prometheus.CounterVec
	upstream       *prometheus.HistogramVec
	upstreamErrors *prometheus.CounterVec
	sealFailures   *prometheus.CounterVec
	overloaded     *prometheus.CounterVec
	queueWait      *prometheus.HistogramVec
	jobs           *prometheus.CounterVec

	// perServer is pre-resolved for each configured server (read-only
	// after New); other names use other.
	perServer map[string]*serverSeries
	other     *serverSeries

	slots   atomic.Pointer[func() []SlotStats]
	pending atomic.Pointer[func(context.Context) []JobQueue]
	clients atomic.Pointer[func() ClientStats]

	mu     sync.RWMutex
	series map[requestKey]prometheus.Counter
}

// hotOps are the ops whose upstream series are pre-resolved.
var hotOps = [...]string{contracts.OpCall, contracts.OpList, OpJob}

type serverSeries struct {
	upstream    [len(hotOps)][2]prometheus.Observer // by hot op, then ok/error
	rejected    [3]prometheus.Counter               // by reject reason
	requestWait prometheus.Observer
	jobWait     prometheus.Observer
}

type requestKey struct{ op, server, tool, code string }

// New registers a worker's collectors in reg for cfg's servers.
func New(reg prometheus.Registerer, cfg *config.File) *Metrics {
	m := &Metrics{
		tools: telemetry.NewToolLabels(cfg, 0),
		requests: counterVec("requests_total", "Requests and jobs handled, by op (tools/call, tools/list, a relayed MCP method, job), server, tool (known tools only, else _other) and code (ok or the error code answered).",
			"op", "server", "tool", "code"),
		upstream: histogramVec("upstream_duration_seconds", "Time of calls to the upstream MCP servers, by server, op and outcome (ok or error).",
			telemetry.DurationBuckets, "server", "op", "outcome"),
		upstreamErrors: counterVec("upstream_errors_total", "Failed upstream calls by server and class (the error code: upstream_error, upstream_timeout, upstream_unauthorized, unknown_tool, invalid_request, timeout, cancelled, ...).",
			"server", "class"),
		sealFailures: counterVec("seal_failures_total", "Sealed user credentials refused, by server and reason (expired, replayed, unknown_key, invalid, wrong_subject).",
			"server", "reason"),
		overloaded: counterVec("overload_rejections_total", "Requests refused without reaching the upstream, by server and reason (no_slot, stopping, circuit_open).",
			"server", "reason"),
		queueWait: histogramVec("queue_wait_seconds", "Time before a call starts, by server and kind: request (a NATS request waiting for a call slot here) or job (an async job, from its submission to its start).",
			[]float64{.0005, .001, .005, .01, .05, .1, .5, 1, 5, 30, 120, 600, 3600}, "server", "kind"),
		jobs: counterVec("job_deliveries_total", "Async job deliveries by server and what became of the job: succeeded, failed, cancelled, expired (final states), retry (queued again after a retryable failure), requeued (given back by a stopping worker), or skipped, duplicate, not_owned, invalid, no_record, deferred, lost_worker.",
			"server", "outcome"),
		perServer: make(map[string]*serverSeries, len(cfg.MCPServers)),
		series:    make(map[requestKey]prometheus.Counter),
	}
	resolve := func(server string) *serverSeries {
		s := &serverSeries{
			requestWait: m.queueWait.WithLabelValues(server, QueueRequest),
			jobWait:     m.queueWait.WithLabelValues(server, QueueJob),
		}
		for i, reason := range []string{RejectNoSlot, RejectStopping, RejectCircuitOpen} {
			s.rejected[i] = m.overloaded.WithLabelValues(server, reason)
		}
		for i, op := range hotOps {
			s.upstream[i][0] = m.upstream.WithLabelValues(server, op, "ok")
			s.upstream[i][1] = m.upstream.WithLabelValues(server, op, "error")
		}
		return s
	}
	for name := range cfg.MCPServers {
		m.perServer[name] = resolve(name)
	}
	m.other = resolve(telemetry.OtherServer)
	reg.MustRegister(m.requests, m.upstream, m.upstreamErrors, m.sealFailures, m.overloaded, m.queueWait, m.jobs,
		&scrapeCollector{m: m})
	return m
}

// counterVec is a worker counter with labels.
func counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: telemetry.Namespace, Subsystem: subsystem, Name: name, Help: help,
	}, labels)
}

// histogramVec is a worker histogram with labels.
func histogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: telemetry.Namespace, Subsystem: subsystem, Name: name, Help: help, Buckets: buckets,
	}, labels)
}

func (m *Metrics) server(name string) *serverSeries {
	if s := m.perServer[name]; s != nil {
		return s
	}
	return m.other
}

// opLabel bounds an op: the known ops, else "rpc".
func opLabel(op string) string {
	switch op {
	case contracts.OpCall, contracts.OpList, OpJob:
		return op
	}
	if contracts.RPCMethodAllowed(op) {
		return op
	}
	return "rpc"
}

// Request counts one handled request or job: code is "" for success.
func (m *Metrics) Request(op, server, tool, code string) {
	if m == nil {
		return
	}
	if code == "" {
		code = "ok"
	}
	k := requestKey{op: opLabel(op), server: m.tools.Server(server), tool: m.tools.Tool(server, tool), code: code}
	m.mu.RLock()
	c := m.series[k]
	m.mu.RUnlock()
	if c == nil {
		m.mu.Lock()
		if c = m.series[k]; c == nil {
			c = m.requests.WithLabelValues(k.op, k.server, k.tool, k.code)
			m.series[k] = c
		}
		m.mu.Unlock()
	}
	c.Inc()
}

// Upstream records one upstream call of op on server that took d; e is
// its error (nil for success), counted by class. A success makes tool a
// label value.
func (m *Metrics) Upstream(op, server, tool string, d time.Duration, e *contracts.Error) {
	if m == nil {
		return
	}
	outcome := 0
	if e != nil {
		outcome = 1
		m.upstreamErrors.WithLabelValues(m.tools.Server(server), string(e.Code)).Inc()
	} else {
		m.tools.Learn(server, tool)
	}
	for i, hot := range hotOps {
		if op == hot {
			m.server(server).upstream[i][outcome].Observe(d.Seconds())
			return
		}
	}
	m.upstream.WithLabelValues(m.tools.Server(server), opLabel(op), [2]string{"ok", "error"}[outcome]).Observe(d.Seconds())
}

// SealFailed counts a sealed credential refused on server for reason.
func (m *Metrics) SealFailed(server, reason string) {
	if m == nil {
		return
	}
	m.sealFailures.WithLabelValues(m.tools.Server(server), sealReasonLabel(reason)).Inc()
}

// sealReasonLabel bounds the reasons the handler and the jobs runner give.
func sealReasonLabel(reason string) string {
	switch reason {
	case "expired", "replayed":
		return reason
	case "unknown key":
		return "unknown_key"
	case "sent on another server's subject", "server field does not match the subject":
		return "wrong_subject"
	default:
		return "invalid"
	}
}

// Overloaded counts a request refused on server for reason (a Reject
// constant).
func (m *Metrics) Overloaded(server, reason string) {
	if m == nil {
		return
	}
	s := m.server(server)
	switch reason {
	case RejectNoSlot:
		s.rejected[0].Inc()
	case RejectStopping:
		s.rejected[1].Inc()
	case RejectCircuitOpen:
		s.rejected[2].Inc()
	}
}

// QueueWait records the time a request (or job) waited before starting.
func (m *Metrics) QueueWait(server, kind string, d time.Duration) {
	if m == nil {
		return
	}
	s := m.server(server)
	if kind == QueueJob {
		s.jobWait.Observe(d.Seconds())
		return
	}
	s.requestWait.Observe(d.Seconds())
}

// JobDelivery counts a job delivery's outcome (the jobs runner's log
// status, a bounded set).
func (m *Metrics) JobDelivery(server, outcome string) {
	if m == nil {
		return
	}
	m.jobs.WithLabelValues(m.tools.Server(server), outcome).Inc()
}

// SetSlots sets the function that reports each server's call slots.
func (m *Metrics) SetSlots(f func() []SlotStats) {
	if m == nil {
		return
	}
	m.slots.Store(&f)
}

// ClientStats counts the worker's pooled upstream clients (one per server
// and user credential where the transport has sessions).
type ClientStats struct {
	Open                               int
	Opened, ConnectFailures, Evictions uint64
}

// SetClients sets the function that reports the upstream client pool.
func (m *Metrics) SetClients(f func() ClientStats) {
	if m == nil {
		return
	}
	m.clients.Store(&f)
}

// JobQueue is one server's jobs in JetStream, as its consumer counts them.
type JobQueue struct {
	Server string
	// Pending jobs are not delivered to any worker yet; AckPending ones
	// are delivered and not settled (running, or waiting for a slot).
	Pending, AckPending uint64
}

// SetPending sets the function that reports each server's jobs in
// JetStream; it is called at scrape time with a bounded context and
// reports only the servers it could read.
func (m *Metrics) SetPending(f func(context.Context) []JobQueue) {
	if m == nil {
		return
	}
	m.pending.Store(&f)
}

var (
	inFlightDesc = prometheus.NewDesc(telemetry.Namespace+"_"+subsystem+"_in_flight",
		"Calls running now on a server (async jobs included).", []string{"server"}, nil)
	waitingDesc = prometheus.NewDesc(telemetry.Namespace+"_"+subsystem+"_waiting",
		"Requests waiting for a call slot on a server.", []string{"server"}, nil)
	slotsDesc = prometheus.NewDesc(telemetry.Namespace+"_"+subsystem+"_slots",
		"Calls this worker may run at once on a server.", []string{"server"}, nil)
	queuedDesc = prometheus.NewDesc(telemetry.Namespace+"_"+subsystem+"_jobs_queued",
		"Async jobs of a server waiting in JetStream, not delivered to any worker yet (the shared consumer's pending count: the same on every worker, aggregate with max).", []string{"server"}, nil)
	clientsDesc = prometheus.NewDesc(telemetry.Namespace+"_"+subsystem+"_upstream_clients",
		"Upstream MCP clients pooled now (one per server and user credential where the transport has sessions).", nil, nil)
	clientsOpenedDesc = prometheus.NewDesc(telemetry.Namespace+"_"+subsystem+"_upstream_clients_opened_total",
		"Upstream MCP clients started and initialized (each a new session where the transport has them).", nil, nil)
	clientFailuresDesc = prometheus.NewDesc(telemetry.Namespace+"_"+subsystem+"_upstream_client_failures_total",
		"Upstream MCP clients that failed to start or initialize.", nil, nil)
	clientEvictionsDesc = prometheus.NewDesc(telemetry.Namespace+"_"+subsystem+"_upstream_client_evictions_total",
		"Pooled upstream MCP clients closed to make room for another (max_clients).", nil, nil)
	unackedDesc = prometheus.NewDesc(telemetry.Namespace+"_"+subsystem+"_jobs_unacked",
		"Async jobs of a server delivered to a worker and not settled yet: running or waiting for a slot (the shared consumer's ack-pending count: aggregate with max).", []string{"server"}, nil)
)

// pendingTimeout bounds the JetStream look-up of a scrape.
const pendingTimeout = 2 * time.Second

// scrapeCollector reports at scrape time the slot gauges (nothing is
// counted on the hot path) and the jobs waiting in JetStream.
type scrapeCollector struct{ m *Metrics }

func (c *scrapeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{inFlightDesc, waitingDesc, slotsDesc, queuedDesc, unackedDesc,
		clientsDesc, clientsOpenedDesc, clientFailuresDesc, clientEvictionsDesc} {
		ch <- d
	}
}

func (c *scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	if f := c.m.slots.Load(); f != nil {
		for _, s := range (*f)() {
			ch <- prometheus.MustNewConstMetric(inFlightDesc, prometheus.GaugeValue, float64(s.Running), s.Server)
			ch <- prometheus.MustNewConstMetric(waitingDesc, prometheus.GaugeValue, float64(s.Waiting), s.Server)
			ch <- prometheus.MustNewConstMetric(slotsDesc, prometheus.GaugeValue, float64(s.Slots), s.Server)
		}
	}
	if f := c.m.clients.Load(); f != nil {
		st := (*f)()
		ch <- prometheus.MustNewConstMetric(clientsDesc, prometheus.GaugeValue, float64(st.Open))
		ch <- prometheus.MustNewConstMetric(clientsOpenedDesc, prometheus.CounterValue, float64(st.Opened))
		ch <- prometheus.MustNewConstMetric(clientFailuresDesc, prometheus.CounterValue, float64(st.ConnectFailures))
		ch <- prometheus.MustNewConstMetric(clientEvictionsDesc, prometheus.CounterValue, float64(st.Evictions))
	}
	if f := c.m.pending.Load(); f != nil {
		ctx, cancel := context.WithTimeout(context.Background(), pendingTimeout)
		defer cancel()
		for _, q := range (*f)(ctx) {
			ch <- prometheus.MustNewConstMetric(queuedDesc, prometheus.GaugeValue, float64(q.Pending), q.Server)
			ch <- prometheus.MustNewConstMetric(unackedDesc, prometheus.GaugeValue, float64(q.AckPending), q.Server)
		}
	}
}
