package httpapi

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/telemetry"
	"github.com/toolbus/toolbus/ingress/dispatch"
	"github.com/toolbus/toolbus/ingress/frontdoor"
	"github.com/toolbus/toolbus/ingress/jobs"
	"github.com/toolbus/toolbus/ingress/limits"
	"github.com/toolbus/toolbus/ingress/metrics"
)

// Options are the API's dependencies.
type Options struct {
	Config *config.File
	// Policy decides every request's key, server, tool, budget and
	// credential (package frontdoor).
	Policy     *frontdoor.Policy
	Dispatcher *dispatch.Dispatcher
	Jobs       *jobs.Store
	Logger     zerolog.Logger
	// MaxInFlight bounds the API requests served at once (see
	// limitInFlight): ingress.max_in_flight, whose default config.Normalize
	// applies; 0 or less, no bound.
	MaxInFlight int
	// Limits, if set, are the gateway keys' fair shares (ingress/limits):
	// each API request takes one from its key's rate and request slots,
	// each MCP GET stream and long poll a stream slot.
	Limits *limits.Set
	// MCP, if set, is mounted behind the key middleware (see mcp.go).
	MCP MCPEndpoint
	// Public are mounted without the key middleware (OAuth discovery and
	// flows, which clients reach before they hold anything), with the
	// in-flight and body bounds.
	Public []PublicEndpoint
	// Metrics, if set, records every request (observe.go); MetricsHandler,
	// if set, is served on GET /metrics without a key.
	Metrics        *metrics.Metrics
	MetricsHandler http.Handler
	// Tracer, if set, records an ingress span per request; without it a
	// caller's traceparent is still carried to the upstream.
	Tracer *telemetry.Tracer
}

// API holds the handlers' dependencies.
type API struct {
	cfg    *config.File
	policy *frontdoor.Policy
	d      *dispatch.Dispatcher
	jobs   *jobs.Store
	log    zerolog.Logger
	limits *limits.Set
}

// New returns the router.
func New(o Options) http.Handler {
	gin.SetMode(gin.ReleaseMode)
	a := &API{cfg: o.Config, policy: o.Policy, d: o.Dispatcher, jobs: o.Jobs, log: o.Logger, limits: o.Limits}

	r := gin.New()
	r.HandleMethodNotAllowed = true
	// The client address (the request log's client_ip) comes from
	// forwarding headers only when the peer is a trusted proxy; the entries
	// were checked when the configuration loaded.
	_ = r.SetTrustedProxies(o.Config.Ingress.TrustedProxies)
	r.NoRoute(func(c *gin.Context) {
		abortWithError(c, contracts.NewError(contracts.CodeNotFound, "no route %s %s", frontdoor.Clip(c.Request.Method), frontdoor.Clip(c.Request.URL.Path)))
	})
	r.NoMethod(func(c *gin.Context) {
		abortWithError(c, contracts.NewError(contracts.CodeMethodNotAllowed, "method %s not allowed here", frontdoor.Clip(c.Request.Method)))
	})
	r.Use(requestID(), observe(o.Metrics, o.Tracer), accessLog(o.Logger, len(o.Config.Ingress.TrustedProxies) > 0), recovery(o.Logger), checkHeaders())

	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", a.readyz)
	if o.MetricsHandler != nil {
		r.GET("/metrics", gin.WrapH(o.MetricsHandler))
	}

	maxInFlight := o.MaxInFlight
	// Admin endpoints are not bounded by the in-flight limit: they must
	// answer while the gateway is overloaded.
	admin := r.Group("/admin", checkHost(), authenticate(o.Policy), requireAdmin())
	admin.GET("/workers", a.adminWorkers)

	// The order matters: the key is checked and its rate charged before
	// anything else; the body is read (within ingress.body_timeout) before
	// the request holds a slot, its key's or the ingress's.
	api := r.Group("", checkHost(), limitBody(o.Config.Ingress.MaxBodyBytes), authenticate(o.Policy), limitKeyRate(o.Limits),
		readBodyFirst(o.Config.Ingress.BodyTimeout.D()), limitKeyRequests(o.Limits), limitInFlight(maxInFlight, o.Metrics))
	api.POST("/mcp/tools/call", a.callTool)
	api.POST("/mcp-rest/tools/call", a.callTool)
	api.GET("/mcp/tools/list", a.listTools)
	api.GET("/mcp-rest/tools/list", a.listTools)
	api.GET("/mcp/enabled", a.mcpEnabled)
	api.GET("/v1/mcp/server", a.listServers)
	api.GET("/v1/mcp/server/:id", a.getServer)
	api.GET("/v1/mcp/access_groups", a.accessGroups)
	api.GET("/v1/mcp/tools", a.managementTools)
	api.POST("/v1/calls", a.submitCall)
	api.GET("/v1/calls", a.listCalls)
	api.GET("/v1/calls/:id", a.getCall)
	api.DELETE("/v1/calls/:id", a.cancelCall)
	mountMCP(r, api, o)
	public := r.Group("", limitInFlight(maxInFlight, o.Metrics), limitBody(o.Config.Ingress.MaxBodyBytes))
	for _, p := range o.Public {
		p.Mount(public, abortWithError)
	}
	return r
}

// readyWait is how long /readyz gathers worker answers.
const readyWait = 250 * time.Millisecond

// readyz reports ready when NATS is connected and at least one worker
// answers, with how many workers serve each server.
func (a *API) readyz(c *gin.Context) {
	workers, err := a.d.Workers(c.Request.Context(), readyWait)
	if err != nil {
		abortWithError(c, contracts.NewError(contracts.CodeNoWorkers, "not ready: %v", err))
		return
	}
	if len(workers) == 0 {
		abortWithError(c, contracts.NewError(contracts.CodeNoWorkers, "not ready: no worker answers"))
		return
	}
	perServer := map[string]int{}
	for _, name := range a.cfg.ServerNames() {
		perServer[name] = 0
	}
	for _, w := range workers {
		for _, s := range w.Servers {
			perServer[s]++
		}
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready", "workers": len(workers), "servers": perServer})
}
