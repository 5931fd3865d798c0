package gateway

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/telemetry"
	"github.com/toolbus/toolbus/ingress/auth"
	"github.com/toolbus/toolbus/ingress/dispatch"
	"github.com/toolbus/toolbus/ingress/frontdoor"
	"github.com/toolbus/toolbus/ingress/httpapi"
	"github.com/toolbus/toolbus/ingress/jobs"
	"github.com/toolbus/toolbus/ingress/limits"
	"github.com/toolbus/toolbus/ingress/mcpserver"
	"github.com/toolbus/toolbus/ingress/metrics"
	"github.com/toolbus/toolbus/ingress/oauthproxy"
)

// Options are what the ingress is built from.
type Options struct {
	// Config is the normalized configuration (config.File.Normalize).
	Config *config.File
	// Conn is the NATS connection every part uses.
	Conn *nats.Conn
	// Sealer seals callers' credentials to the workers' key.
	Sealer *contracts.Sealer
	// Logger is the process's logger, with no component field: each part
	// adds its own (ingress, dispatch, jobs, mcp).
	Logger zerolog.Logger
	// Registry, if set, receives the ingress's metrics, which are then
	// served on GET /metrics; nil records none.
	Registry *prometheus.Registry
	// Tracer, if set, records the ingress's spans; nil records none (a
	// caller's traceparent is still carried to the upstream).
	Tracer *telemetry.Tracer
	// WatchKeys keeps the managed gateway keys (`ingress keys ...`) in step
	// with NATS until Close.
	WatchKeys bool
	// Version is reported by the MCP endpoint; empty means "dev".
	Version string
}

// Gateway is an assembled ingress. Serve Handler; on shutdown call
// CloseStreams before the HTTP server's Shutdown, and Close after it.
type Gateway struct {
	// Handler is the router: the REST API, the MCP endpoint, probes and
	// (with a Registry) /metrics.
	Handler    http.Handler
	Keys       *auth.Keys
	Policy     *frontdoor.Policy
	Dispatcher *dispatch.Dispatcher
	Catalog    *dispatch.Catalog
	Jobs       *jobs.Store
	MCP        *mcpserver.Server
	Metrics    *metrics.Metrics
	// OAuth is the OAuth proxy of interactive oauth2 servers; nil when
	// there is none.
	OAuth *oauthproxy.Proxy
	// Limits are the gateway keys' fair shares, divided among the replicas
	// Presence counts.
	Limits   *limits.Set
	Presence *limits.Presence

	stopWatch context.CancelFunc
	watchDone chan struct{}
}

// Assemble builds the ingress from o. Nothing listens yet: serve Handler.
func Assemble(o Options) (g *Gateway, err error) {
	cfg := o.Config
	log := o.Logger.With().Str("component", "ingress").Logger()
	g = &Gateway{}
	defer func() {
		if err != nil {
			g.Close()
		}
	}()
	if g.Keys, err = auth.New(cfg.Keys, cfg.Ingress.Separator()); err != nil {
		return nil, err
	}
	g.Keys.UseAccessGroups(cfg.AccessGroups()) // managed keys' access_groups
	if len(cfg.Keys) == 0 {
		log.Warn().Msg("no gateway keys configured: only managed keys (ingress keys create) will be accepted")
	}
	var metricsHandler http.Handler
	if o.Registry != nil {
		g.Metrics = metrics.New(o.Registry, cfg)
		metricsHandler = telemetry.Handler(o.Registry)
	}
	if g.Presence, err = limits.StartPresence(o.Conn, 0, log); err != nil {
		return nil, err
	}
	g.Limits = limits.New(cfg, g.Presence.Replicas)
	if g.Dispatcher, err = dispatch.New(o.Conn, o.Sealer, o.Logger.With().Str("component", "dispatch").Logger(),
		dispatch.WithMetrics(g.Metrics), dispatch.WithTracer(o.Tracer), dispatch.WithAdmission(g.Limits.ServerCall)); err != nil {
		return nil, err
	}
	if g.Jobs, err = jobs.New(o.Conn, o.Sealer, cfg.Jobs, o.Logger.With().Str("component", "jobs").Logger()); err != nil {
		return nil, err
	}
	g.Catalog = dispatch.NewCatalog(g.Dispatcher, cfg.Ingress.ListCacheTTL.D())
	identity, err := loadIdentity(o.Conn, cfg)
	if err != nil {
		return nil, err
	}
	g.Policy = frontdoor.New(cfg, g.Keys, g.Catalog, identity)
	var public []httpapi.PublicEndpoint
	mcpOpts := mcpserver.Options{
		Config: cfg, Policy: g.Policy, Dispatcher: g.Dispatcher, Jobs: g.Jobs, Conn: o.Conn,
		Logger: o.Logger.With().Str("component", "mcp").Logger(), Version: o.Version,
	}
	if oauthproxy.Enabled(cfg) {
		// Interactive oauth2 servers: their OAuth flow through the gateway.
		g.OAuth = oauthproxy.New(oauthproxy.Options{
			Config: cfg, Conn: o.Conn, Logger: o.Logger.With().Str("component", "oauth").Logger(),
		})
		mcpOpts.Challenge = g.OAuth.Challenge
		public = append(public, g.OAuth)
	}
	if g.MCP, err = mcpserver.New(mcpOpts); err != nil {
		return nil, err
	}
	g.Handler = httpapi.New(httpapi.Options{
		Config: cfg, Policy: g.Policy, Dispatcher: g.Dispatcher, Jobs: g.Jobs, Logger: log,
		MaxInFlight: cfg.Ingress.MaxInFlight, MCP: g.MCP, Public: public, Limits: g.Limits,
		// Every request is measured and traced; GET /metrics on the listen port.
		Metrics: g.Metrics, MetricsHandler: metricsHandler, Tracer: o.Tracer,
	})
	g.Handler = withProtectedResource(g.Policy.OIDC(), cfg, g.Handler)
	if o.WatchKeys {
		js, err := jetstream.New(o.Conn)
		if err != nil {
			return nil, err
		}
		var watchCtx context.Context
		watchCtx, g.stopWatch = context.WithCancel(context.Background())
		g.watchDone = make(chan struct{})
		go func() { defer close(g.watchDone); g.Keys.Watch(watchCtx, js, log) }()
	}
	return g, nil
}

// CloseStreams ends the long-lived MCP streams (legacy SSE, standalone
// streams), which an HTTP server's Shutdown does not wait for.
func (g *Gateway) CloseStreams() {
	if g.MCP != nil {
		g.MCP.Close()
	}
}

// Close stops everything Assemble started: the streams, the managed-key
// watch and the dispatcher. Call it once the HTTP server has stopped.
func (g *Gateway) Close() {
	g.CloseStreams()
	if g.stopWatch != nil {
		g.stopWatch()
		<-g.watchDone
	}
	if g.Dispatcher != nil {
		_ = g.Dispatcher.Close()
	}
	if g.Presence != nil {
		g.Presence.Close()
	}
}

// identityTimeout bounds reading (or creating) the identity secret at start.
const identityTimeout = 10 * time.Second

// loadIdentity keys callers' identities: ingress.identity_secret, or the
// deployment's secret in NATS KV (auth.LoadIdentity).
func loadIdentity(nc *nats.Conn, cfg *config.File) (*auth.Identity, error) {
	if cfg.Ingress.IdentitySecret != "" {
		return auth.NewIdentity([]byte(cfg.Ingress.IdentitySecret))
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), identityTimeout)
	defer cancel()
	id, err := auth.LoadIdentity(ctx, js, "", cfg.Jobs.Replicas)
	if err != nil {
		return nil, fmt.Errorf("%w (set ingress.identity_secret, or start the ingress once NATS JetStream is reachable)", err)
	}
	return id, nil
}
