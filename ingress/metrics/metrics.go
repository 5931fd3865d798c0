// Package metrics holds the ingress's Prometheus collectors: requests by
// route, server, tool, status and code; request and NATS round-trip
// latency; requests in flight; overload rejections; and sealing failures.
//
// Label values come from bounded sets only: route templates, configured
// server names, known tool names (telemetry.ToolLabels), HTTP statuses and
// error codes. No key, token or caller-supplied free text is ever a label.
// A nil *Metrics is valid and records nothing.
package metrics

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/telemetry"
)

// Round-trip results (the result label of toolbus_ingress_nats_round_trip_seconds).
const (
	ResultReply       = "reply"       // a worker answered (with a result or an error)
	ResultNoWorkers   = "no_workers"  // no worker subscribed: NATS answered at once
	ResultTimeout     = "timeout"     // no answer within the wait
	ResultCancelled   = "cancelled"   // the caller went away or its deadline passed
	ResultUnavailable = "unavailable" // the request could not be published
)

// Round-trip operations (the op label): the subject's kind.
var ops = []string{"call", "list", "rpc"}

var results = []string{ResultReply, ResultNoWorkers, ResultTimeout, ResultCancelled, ResultUnavailable}

const subsystem = "ingress"

// Metrics are one ingress's collectors.
type Metrics struct {
	tools *telemetry.ToolLabels

	requests   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	overloaded prometheus.Counter
	sealFails  prometheus.Counter
	inFlight   atomic.Pointer[func() int]

	// roundTrip is pre-resolved per configured server, op and result.
	roundTrip      map[string]*[3][5]prometheus.Observer
	roundTripOther *[3][5]prometheus.Observer

	mu     sync.RWMutex
	series map[requestKey]*requestSeries
}

type requestKey struct {
	route, server, tool, code string
	status                    int
}

type requestSeries struct {
	count    prometheus.Counter
	duration prometheus.Observer
}

// New registers the ingress's collectors in reg for cfg's servers.
func New(reg prometheus.Registerer, cfg *config.File) *Metrics {
	m := &Metrics{
		tools: telemetry.NewToolLabels(cfg, 0),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: telemetry.Namespace, Subsystem: subsystem, Name: "requests_total",
			Help: "HTTP requests answered, by route template, server, tool (known tools only, else _other), HTTP status and error code (ok for none).",
		}, []string{"route", "server", "tool", "status", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: telemetry.Namespace, Subsystem: subsystem, Name: "request_duration_seconds",
			Help:    "Time from a request's arrival to its answer, by route template, server and HTTP status.",
			Buckets: telemetry.DurationBuckets,
		}, []string{"route", "server", "status"}),
		overloaded: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: telemetry.Namespace, Subsystem: subsystem, Name: "overload_rejections_total",
			Help: "Requests answered 503 overloaded at once because ingress.max_in_flight requests were being served.",
		}),
		sealFails: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: telemetry.Namespace, Subsystem: subsystem, Name: "seal_failures_total",
			Help: "User credentials that could not be sealed (the request failed with internal).",
		}),
		series: make(map[requestKey]*requestSeries),
	}
	roundTrip := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: telemetry.Namespace, Subsystem: subsystem, Name: "nats_round_trip_seconds",
		Help:    "Time from publishing a request to a worker to its answer (or the end of the wait), by op (call, list, rpc), server and result.",
		Buckets: telemetry.DurationBuckets,
	}, []string{"op", "server", "result"})
	resolve := func(server string) *[3][5]prometheus.Observer {
		var o [3][5]prometheus.Observer
		for i, op := range ops {
			for j, r := range results {
				o[i][j] = roundTrip.WithLabelValues(op, server, r)
			}
		}
		return &o
	}
	m.roundTrip = make(map[string]*[3][5]prometheus.Observer, len(cfg.MCPServers))
	for name := range cfg.MCPServers {
		m.roundTrip[name] = resolve(name)
	}
	m.roundTripOther = resolve(telemetry.OtherServer)
	inFlight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: telemetry.Namespace, Subsystem: subsystem, Name: "in_flight_requests",
		Help: "API requests being served now (those counted against ingress.max_in_flight).",
	}, func() float64 {
		if f := m.inFlight.Load(); f != nil {
			return float64((*f)())
		}
		return 0
	})
	reg.MustRegister(m.requests, m.duration, m.overloaded, m.sealFails, roundTrip, inFlight)
	return m
}

// Request records one answered request. route is the route template ("" for
// none), server and tool what the request resolved to ("" for none; they are
// bounded here), status the HTTP status and code the error code ("" for
// success).
func (m *Metrics) Request(route, server, tool string, status int, code string, d time.Duration) {
	if m == nil {
		return
	}
	if route == "" {
		route = "unmatched"
	}
	if code == "" {
		code = "ok"
	}
	tool = m.tools.Tool(server, tool)
	server = m.tools.Server(server)
	k := requestKey{route: route, server: server, tool: tool, code: code, status: status}
	m.mu.RLock()
	s := m.series[k]
	m.mu.RUnlock()
	if s == nil {
		s = m.newSeries(k)
	}
	s.count.Inc()
	s.duration.Observe(d.Seconds())
}

func (m *Metrics) newSeries(k requestKey) *requestSeries {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.series[k]; s != nil {
		return s
	}
	status := strconv.Itoa(k.status)
	s := &requestSeries{
		count:    m.requests.WithLabelValues(k.route, k.server, k.tool, status, k.code),
		duration: m.duration.WithLabelValues(k.route, k.server, status),
	}
	m.series[k] = s
	return s
}

// LearnTool makes tool a label value of server: a call to it succeeded.
func (m *Metrics) LearnTool(server, tool string) {
	if m == nil {
		return
	}
	m.tools.Learn(server, tool)
}

// Overloaded counts a request refused by the in-flight bound.
func (m *Metrics) Overloaded() {
	if m == nil {
		return
	}
	m.overloaded.Inc()
}

// SealFailed counts a credential that could not be sealed.
func (m *Metrics) SealFailed() {
	if m == nil {
		return
	}
	m.sealFails.Inc()
}

// SetInFlight sets the function that reports the requests in flight.
func (m *Metrics) SetInFlight(f func() int) {
	if m == nil {
		return
	}
	m.inFlight.Store(&f)
}

// RoundTrip records a NATS round trip: op is call, list or rpc (else it is
// not recorded), result one of the Result constants.
func (m *Metrics) RoundTrip(op, server, result string, d time.Duration) {
	if m == nil {
		return
	}
	i := index(ops, op)
	j := index(results, result)
	if i < 0 || j < 0 {
		return
	}
	o := m.roundTrip[server]
	if o == nil {
		o = m.roundTripOther
	}
	o[i][j].Observe(d.Seconds())
}

func index(set []string, v string) int {
	for i, s := range set {
		if s == v {
			return i
		}
	}
	return -1
}
