package gatewaytest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/contracts/telemetry"
	"github.com/toolbus/toolbus/ingress/devmode"
	"github.com/toolbus/toolbus/ingress/gateway"
)

// Keys of the test gateway.
const (
	MasterKey = "sk-master"
	TeamAKey  = "sk-team-a" // demo only; tools demo-echo and demo-whoami
)

// stopBound bounds the teardown of what Start started.
const stopBound = 10 * time.Second

// Gateway is a started system.
type Gateway struct {
	// URL and Handler are the first ingress's (NewIngress starts more).
	URL     string
	Handler http.Handler
	Ingress *gateway.Gateway
	Env     *devmode.Env
	Cfg     *config.File
	// Logs holds every log line: the ingresses' and the workers'.
	Logs *contractstest.LogBuffer
	// Upstreams are the demo servers by configured name ("demo" included).
	Upstreams map[string]*devmode.Demo
	// Calls counts the tool calls of the "counted" upstream.
	Calls *devmode.DemoCalls
	// WorkerRegistry holds the workers' metrics (WithTelemetry only).
	WorkerRegistry *prometheus.Registry
	// Bus and Inboxes record every message on the toolbus subjects and the
	// reply inboxes, once RecordBus was called.
	Bus, Inboxes *contractstest.Recording

	tracing *telemetry.Tracing
}

// Option changes what Start starts.
type Option func(*options)

type options struct {
	changes  []func(*config.File)
	demoOnly bool
	tracing  *telemetry.Tracing
}

// WithConfig applies change to the configuration before anything starts.
func WithConfig(change func(*config.File)) Option {
	return func(o *options) { o.changes = append(o.changes, change) }
}

// DemoOnly starts the dev environment's demo server only, with the master
// key only: no other upstream, no team key.
func DemoOnly() Option { return func(o *options) { o.demoOnly = true } }

// WithTelemetry gives the workers a registry (WorkerRegistry) and the
// ingress its own, served on its GET /metrics; both record spans with
// tracing.
func WithTelemetry(tracing *telemetry.Tracing) Option {
	return func(o *options) { o.tracing = tracing }
}

// upstream is one more demo server Start runs.
type upstream struct {
	transport string
	opts      devmode.DemoOptions
}

// Start starts the system until the test ends. Besides "demo" it
// configures (unless DemoOnly):
//
//	other    http, a second demo (so echo and whoami are ambiguous)
//	legacy   sse
//	noauth   http, auth: none, disallowed_tools [fail]
//	locked   http, answers 401 unless Authorization is "Bearer good"
//	limited  http, allowed_tools [echo]
//	counted  http, counts its tool calls (Calls)
//	ghost    http, served by no worker
//
// The workers serve every configured server but ghost, unless a change
// sets worker.servers.
// and the keys master (MasterKey, every server and tool) and team-a
// (TeamAKey: server demo, tools demo-echo and demo-whoami).
func Start(t testing.TB, opts ...Option) *Gateway {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	g := &Gateway{
		Logs: &contractstest.LogBuffer{}, Upstreams: map[string]*devmode.Demo{},
		Calls: &devmode.DemoCalls{}, tracing: o.tracing,
	}
	g.Cfg = &config.File{Keys: []config.Key{{Name: "master", Key: MasterKey}}}
	if !o.demoOnly {
		g.configureUpstreams(ctx, t)
	}
	for _, change := range o.changes {
		change(g.Cfg)
	}
	if !o.demoOnly && g.Cfg.Worker.Servers == nil {
		// The workers serve every server but ghost, and the dev
		// environment's demo.
		g.Cfg.Worker.Servers = []string{devmode.DemoServer}
		for _, name := range g.Cfg.ServerNames() {
			if name != "ghost" && name != devmode.DemoServer {
				g.Cfg.Worker.Servers = append(g.Cfg.Worker.Servers, name)
			}
		}
	}

	var envOpts []devmode.Option
	if o.tracing != nil {
		g.WorkerRegistry = telemetry.NewRegistry()
		envOpts = append(envOpts, devmode.WithTelemetry(g.WorkerRegistry, o.tracing.Tracer()))
	}
	env, err := devmode.Start(ctx, g.Cfg, zerolog.New(g.Logs), envOpts...)
	if err != nil {
		t.Fatal(err)
	}
	StopAtEnd(t, env.Stop)
	g.Env = env
	g.Upstreams["demo"] = env.Demo

	in := g.NewIngress(t)
	g.URL, g.Handler, g.Ingress = in.URL, in.Handler, in.Gateway
	return g
}

// StopAtEnd calls stop when the test ends, on a fresh context bounded by
// stopBound.
func StopAtEnd(t testing.TB, stop func(context.Context) error) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), stopBound)
		defer cancel()
		_ = stop(ctx)
	})
}

// configureUpstreams starts the extra upstreams and configures them with
// the team key.
func (g *Gateway) configureUpstreams(ctx context.Context, t testing.TB) {
	t.Helper()
	for name, up := range map[string]upstream{
		"other":   {devmode.DemoHTTP, devmode.DemoOptions{}},
		"legacy":  {devmode.DemoSSE, devmode.DemoOptions{}},
		"noauth":  {devmode.DemoHTTP, devmode.DemoOptions{}},
		"locked":  {devmode.DemoHTTP, devmode.DemoOptions{RequireToken: "Bearer good"}},
		"limited": {devmode.DemoHTTP, devmode.DemoOptions{}},
		"counted": {devmode.DemoHTTP, devmode.DemoOptions{Calls: g.Calls}},
	} {
		running, err := devmode.StartDemo(ctx, up.opts, up.transport)
		if err != nil {
			t.Fatal(err)
		}
		StopAtEnd(t, running.Close)
		g.Upstreams[name] = running
	}
	g.Cfg.MCPServers = map[string]*config.Server{
		"other":   {URL: g.Upstreams["other"].URL},
		"legacy":  {URL: g.Upstreams["legacy"].URL, Transport: "sse"},
		"noauth":  {URL: g.Upstreams["noauth"].URL, Auth: config.AuthNone, DisallowedTools: []string{"fail"}},
		"locked":  {URL: g.Upstreams["locked"].URL},
		"limited": {URL: g.Upstreams["limited"].URL, AllowedTools: []string{"echo"}},
		"counted": {URL: g.Upstreams["counted"].URL},
		"ghost":   {URL: "http://127.0.0.1:9/mcp"},
	}
	g.Cfg.Keys = append(g.Cfg.Keys, config.Key{
		Name: "team-a", Key: TeamAKey, Servers: []string{"demo"}, Tools: []string{"demo-echo", "demo-whoami"},
	})
}

// Ingress is one ingress replica of the gateway.
type Ingress struct {
	URL     string
	Handler http.Handler
	Gateway *gateway.Gateway
}

// NewIngress assembles one more ingress (gateway.Assemble) on the gateway's
// NATS and serves it on loopback, as another replica would. changes apply
// to its own copy of the ingress settings.
func (g *Gateway) NewIngress(t testing.TB, changes ...func(*config.Ingress)) *Ingress {
	t.Helper()
	cfg := g.Cfg
	if len(changes) > 0 {
		own := *g.Cfg
		for _, change := range changes {
			change(&own.Ingress)
		}
		cfg = &own
	}
	o := gateway.Options{Config: cfg, Conn: g.Env.Conn, Sealer: g.Env.Sealer, Logger: zerolog.New(g.Logs)}
	if g.tracing != nil {
		o.Registry, o.Tracer = telemetry.NewRegistry(), g.tracing.Tracer()
	}
	gw, err := gateway.Assemble(o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw.Handler)
	t.Cleanup(func() {
		gw.CloseStreams()
		srv.Close()
		gw.Close()
	})
	return &Ingress{URL: srv.URL, Handler: gw.Handler, Gateway: gw}
}

// RecordBus starts recording every raw message on the toolbus subjects and
// the reply inboxes (Bus, Inboxes). Only leak tests do: a wildcard
// subscriber counts as a responder to NATS, so it would turn no_workers
// into a timeout.
func (g *Gateway) RecordBus(t testing.TB) {
	t.Helper()
	g.Bus = contractstest.RecordAll(t, g.Env.Conn, "toolbus.>")
	g.Inboxes = contractstest.RecordAll(t, g.Env.Conn, "_INBOX.>")
}

// AssertNoSecret fails if secret is in any log line or in any raw byte that
// crossed NATS since RecordBus - requests and replies. Use it after calls
// whose result does not itself hold the secret (echo, not whoami).
func (g *Gateway) AssertNoSecret(t testing.TB, secret string) {
	t.Helper()
	g.Bus.Flush(t)
	g.Inboxes.Flush(t)
	if g.Bus.Count() == 0 || g.Inboxes.Count() == 0 {
		t.Fatal("the bus recorder saw nothing: the leak check would be vacuous")
	}
	if g.Bus.Contains([]byte(secret)) || g.Inboxes.Contains([]byte(secret)) {
		t.Errorf("secret %q crossed NATS in plaintext", secret)
	}
	if strings.Contains(g.Logs.String(), secret) {
		t.Errorf("secret %q is in the logs", secret)
	}
}
