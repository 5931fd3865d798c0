// Package devmode runs the whole of toolbus in one process: an embedded
// NATS server with JetStream, a worker pool, and a demo MCP server, with an
// ephemeral sealing key pair. It exists for `go run ./ingress --dev` and for
// tests; production runs the ingress and workers as separate processes
// against an external NATS.
package devmode

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/natsconn"
	"github.com/toolbus/toolbus/contracts/telemetry"
	"github.com/toolbus/toolbus/worker/demoserver"
	workermetrics "github.com/toolbus/toolbus/worker/metrics"
	"github.com/toolbus/toolbus/worker/pool"
)

// Defaults of the embedded setup.
const (
	// DemoServer is the name the demo MCP server is configured under.
	DemoServer = "demo"
	// DevKey is the gateway key dev mode adds when the config has none.
	DevKey = "sk-1234"
)

// connDrainTimeout bounds the drain of the in-process connection in Stop.
const connDrainTimeout = 5 * time.Second

// Env is a running dev environment.
type Env struct {
	// Conn is an in-process connection to the embedded NATS server.
	Conn *nats.Conn
	// Sealer seals to the ephemeral key the in-process workers hold.
	Sealer *contracts.Sealer
	// DemoURL is the demo MCP server's endpoint.
	DemoURL string
	// AddedDevKey is true when the config had no keys and DevKey was added.
	AddedDevKey bool
	// Demo is the demo MCP server (its Recorder shows what it received).
	Demo *demoserver.Running

	ns       *server.Server
	storeDir string
	workers  *pool.Pool
}

// Option adjusts the dev environment.
type Option func(*options)

type options struct {
	metrics prometheus.Registerer
	tracer  *telemetry.Tracer
}

// WithTelemetry registers the in-process workers' metrics in reg (nil: no
// metrics) and records their spans with tracer (nil: none).
func WithTelemetry(reg prometheus.Registerer, tracer *telemetry.Tracer) Option {
	return func(o *options) { o.metrics, o.tracer = reg, tracer }
}

// Start brings everything up and completes cfg: it adds the demo server
// (unless a server is already named "demo") and, if cfg has no keys, DevKey
// as the master key; cfg is normalized again. log should carry no component
// field: the workers add their own.
func Start(ctx context.Context, cfg *config.File, log zerolog.Logger, opts ...Option) (env *Env, err error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	env = &Env{}
	defer func() {
		if err != nil {
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = env.Stop(stopCtx)
		}
	}()

	// The demo server outlives ctx (a signal): Stop closes it after the
	// workers, whose upstream clients say goodbye to it on the way out.
	env.Demo, err = demoserver.Start(context.WithoutCancel(ctx), demoserver.Options{}, demoserver.TransportHTTP)
	if err != nil {
		return env, fmt.Errorf("demo MCP server: %w", err)
	}
	env.DemoURL = env.Demo.URL
	if cfg.MCPServers == nil {
		cfg.MCPServers = map[string]*config.Server{}
	}
	if _, taken := cfg.MCPServers[DemoServer]; !taken {
		cfg.MCPServers[DemoServer] = &config.Server{URL: env.DemoURL, Description: "toolbus demo server (echo, whoami, slow, fail, big, ask, sample, touch)"}
	}
	if len(cfg.Keys) == 0 {
		cfg.GeneralSettings.MasterKey = DevKey
		env.AddedDevKey = true
	}
	if err := cfg.Normalize(); err != nil {
		return env, err
	}

	if env.storeDir, err = os.MkdirTemp("", "toolbus-dev-*"); err != nil {
		return env, err
	}
	env.ns, err = server.NewServer(&server.Options{
		ServerName: "toolbus-dev", JetStream: true, StoreDir: env.storeDir,
		DontListen: true, NoSigs: true, NoLog: true,
	})
	if err != nil {
		return env, fmt.Errorf("embedded NATS: %w", err)
	}
	env.ns.Start()
	if !env.ns.ReadyForConnections(10 * time.Second) {
		return env, errors.New("embedded NATS did not start")
	}
	// In process: connected once Connect returns, at no URL worth logging.
	if env.Conn, err = natsconn.Connect(config.NATS{}, natsconn.NameDev, log.With().Str("component", "dev").Logger(),
		nats.InProcessServer(env.ns), nats.ConnectHandler(nil)); err != nil {
		return env, err
	}

	key, err := contracts.GenerateKeyPair()
	if err != nil {
		return env, err
	}
	env.Sealer = contracts.NewSealer(key.Public(), cfg.Seal.EpochTTL.D())
	var wm *workermetrics.Metrics
	if o.metrics != nil {
		wm = workermetrics.New(o.metrics, cfg)
	}
	env.workers, err = pool.New(cfg, env.Conn, contracts.NewOpener(key), log.With().Str("component", "worker").Logger(),
		pool.WithTelemetry(wm, o.tracer))
	if err != nil {
		return env, err
	}
	if err := env.workers.Start(ctx); err != nil {
		return env, err
	}
	// The workers create the async jobs stream and buckets; wait for them so
	// the first submit finds them.
	select {
	case <-env.workers.JobsReady():
	case <-time.After(30 * time.Second):
		return env, errors.New("the worker pool did not set up async jobs in time")
	case <-ctx.Done():
		return env, ctx.Err()
	}
	return env, nil
}

// StoreDir is the embedded NATS server's JetStream store (removed by Stop),
// for tests that read what JetStream keeps on disk.
func (e *Env) StoreDir() string { return e.storeDir }

// Stop drains the workers and the in-process connection, then stops NATS
// and the demo server. It is safe on a partly started Env.
func (e *Env) Stop(ctx context.Context) error {
	var errs []error
	if e.workers != nil {
		errs = append(errs, e.workers.Stop(ctx))
	}
	if e.Conn != nil {
		errs = append(errs, natsconn.Drain(e.Conn, connDrainTimeout))
	}
	if e.ns != nil {
		e.ns.Shutdown()
		e.ns.WaitForShutdown()
	}
	if e.storeDir != "" {
		errs = append(errs, os.RemoveAll(e.storeDir))
	}
	if e.Demo != nil {
		errs = append(errs, e.Demo.Close(ctx))
	}
	return errors.Join(errs...)
}
