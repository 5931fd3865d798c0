// Command worker is toolbus's worker process: it takes tool calls and tool
// lists from NATS, and async jobs from JetStream (creating the jobs stream
// and buckets), opens the sealed user token and calls the upstream MCP
// servers with it.
//
//	worker --config FILE [--servers a,b]   run a worker
//	worker check --config FILE [--strict]  validate a configuration, print it with secrets redacted
//	worker keygen                          print a new sealing key pair
//	worker demo-server [flags]             run the demo MCP server
//	worker healthcheck URL                 exit 0 if URL answers 2xx (container healthchecks)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/natsconn"
	"github.com/toolbus/toolbus/contracts/telemetry"
	"github.com/toolbus/toolbus/worker/demoserver"
	workermetrics "github.com/toolbus/toolbus/worker/metrics"
	"github.com/toolbus/toolbus/worker/pool"
)

// Shutdown bounds beyond worker.drain_timeout.
const (
	stopMargin        = 5 * time.Second
	natsDrainTimeout  = 5 * time.Second
	natsReconnectWait = time.Second
	serviceConnSuffix = "-service"
)

// Bounds of the metrics server's and the tracer's shutdown.
const (
	metricsShutdownTimeout = 5 * time.Second
	tracingShutdownTimeout = 5 * time.Second
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

// run is the whole program; it returns when ctx ends (after a graceful
// stop) or on a startup error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "keygen":
			return keygen(stdout)
		case "check":
			return runCheck(args[1:], stdout, stderr, os.Getenv)
		case "demo-server":
			return demoserver.Main(ctx, args[1:], stdout)
		case "healthcheck":
			return telemetry.Healthcheck(ctx, "worker", "http://127.0.0.1:9090/healthz", args[1:], stdout, stderr)
		}
	}

	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: worker --config FILE [--servers a,b] [--strict]\n       worker check --config FILE [--servers a,b] [--strict]\n       worker keygen\n       worker demo-server [--transport http|sse|stdio] ...\n\n")
		fs.PrintDefaults()
	}
	configPath := fs.String("config", "", "configuration file (YAML; a LiteLLM config.yaml works as is)")
	servers := fs.String("servers", "", "comma-separated servers this worker serves (default: worker.servers, else all)")
	strict := fs.Bool("strict", false, "treat every configuration warning (unknown key, LiteLLM key not implemented) as an error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *configPath == "" {
		fs.Usage()
		return errors.New("--config FILE is required")
	}

	// Always JSON lines: the worker runs only in production shape.
	base, closeLog := telemetry.NewLogger(stderr, false)
	defer closeLog() // last: every line below is written out
	log := base.With().Str("component", "worker").Logger()
	cfg, warnings, err := loadConfig(*configPath, *servers, *strict, os.Getenv)
	if err != nil {
		return err
	}
	for _, w := range warnings {
		log.Warn().Str("path", w.Path).Msg("config: " + w.Message)
	}
	keys, err := cfg.Seal.ParsePrivateKeys()
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		return errors.New("no sealing private key: set seal.private_keys, seal.private_keys_file or " +
			config.EnvSealPrivateKeys + " (generate a pair with: go run ./worker keygen)")
	}

	nc, err := connect(cfg, log, "")
	if err != nil {
		return err
	}
	defer nc.Close()
	// Requests come in on a connection of their own, so that a stopping
	// worker knows when it has received its last one (pool.WithServiceConn).
	svcNC, err := connect(cfg, log.With().Str("conn", "service").Logger(), serviceConnSuffix)
	if err != nil {
		return err
	}
	defer svcNC.Close()

	// Metrics in a registry of this process's own, served on
	// worker.metrics_listen; traces exported only when tracing is configured.
	reg := telemetry.NewRegistry()
	tracing, err := telemetry.StartTracing(ctx, cfg.Tracing, telemetry.ServiceWorker, log)
	if err != nil {
		return err
	}
	defer func() {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), tracingShutdownTimeout)
		defer cancel()
		_ = tracing.Shutdown(shutdownCtx)
	}()

	p, err := pool.New(cfg, nc, contracts.NewOpener(keys...), log, pool.WithServiceConn(svcNC),
		pool.WithTelemetry(workermetrics.New(reg, cfg), tracing.Tracer()))
	if err != nil {
		return err
	}
	var stopping atomic.Bool
	if cfg.Worker.MetricsListen != "" {
		ms, err := telemetry.Serve(cfg.Worker.MetricsListen, reg, func() error {
			switch {
			case stopping.Load():
				return errors.New("stopping")
			case !nc.IsConnected():
				return errors.New("NATS not connected")
			}
			return nil
		})
		if err != nil {
			_ = p.Stop(context.Background())
			return fmt.Errorf("worker.metrics_listen: %w", err)
		}
		log.Info().Str("listen", "http://"+ms.Addr()).Msg("metrics: /metrics, /healthz, /readyz")
		// Last to stop: scrapes see the drain.
		defer func() {
			shutdownCtx, cancel := context.WithTimeout(context.Background(), metricsShutdownTimeout)
			defer cancel()
			_ = ms.Shutdown(shutdownCtx)
		}()
	}
	if err := p.Start(ctx); err != nil {
		_ = p.Stop(context.Background())
		return err
	}
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = k.ID()
	}
	if nc.IsConnected() {
		log.Info().Str("nats", nc.ConnectedUrlRedacted()).Strs("seal_key_ids", ids).Msg("worker ready")
	} else {
		log.Warn().Strs("seal_key_ids", ids).Msg("worker ready, waiting for NATS")
	}

	<-ctx.Done()
	stopping.Store(true)
	log.Info().Msg("stopping: draining in-flight calls")
	stopCtx, cancel := context.WithTimeout(context.Background(), cfg.Worker.DrainTimeout.D()+stopMargin)
	defer cancel()
	stopErr := p.Stop(stopCtx)
	svcNC.Close() // drained by Stop; replies went out on nc
	if !nc.IsConnected() {
		nc.Close() // nothing can drain without the bus; do not wait for it
	} else if err := natsconn.Drain(nc, natsDrainTimeout); err != nil {
		log.Warn().Err(err).Msg("NATS connection closed before its drain finished")
	}
	if stopErr != nil {
		log.Warn().Str("error", stopErr.Error()).Msg("stopped with errors")
	} else {
		log.Info().Msg("stopped")
	}
	return nil
}

// loadConfig reads the file, applies the environment and --servers, and
// validates the result. The warnings are the loader's (see config.Parse).
func loadConfig(path, servers string, strict bool, getenv func(string) string) (*config.File, []config.Warning, error) {
	cfg, warnings, err := config.ReadFile(path, config.Options{Strict: strict, Getenv: getenv})
	if err != nil {
		return nil, warnings, err
	}
	if err := cfg.ApplyEnv(getenv); err != nil {
		return nil, warnings, err
	}
	if servers != "" {
		cfg.Worker.Servers = nil
		for _, s := range strings.Split(servers, ",") {
			if s = strings.TrimSpace(s); s != "" {
				cfg.Worker.Servers = append(cfg.Worker.Servers, s)
			}
		}
	}
	if err := cfg.Normalize(); err != nil {
		return nil, warnings, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, warnings, nil
}

// connect dials NATS the way both binaries do (contracts/natsconn); suffix
// is added to the connection's name. The connection retries and reconnects
// forever, every second: a worker may start before NATS, and it survives
// NATS restarts and the loss of a cluster node (its subscriptions are
// re-established by nats.go). While disconnected, what it publishes is
// buffered and sent on reconnecting.
func connect(cfg *config.File, log zerolog.Logger, suffix string) (*nats.Conn, error) {
	return natsconn.Connect(cfg.NATS, natsconn.NameWorker, log,
		nats.Name(natsconn.Name(cfg.NATS, natsconn.NameWorker)+suffix), nats.ReconnectWait(natsReconnectWait))
}

// keygen prints a new sealing key pair, each key alone on a labelled line.
func keygen(w io.Writer) error {
	k, err := contracts.GenerateKeyPair()
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, `# toolbus sealing key pair, key id %s
# Public key, for every ingress: seal.public_keys or %s
public:  %s
# Private key, for every worker: seal.private_keys or %s. Keep it secret.
private: %s
`, k.ID(), config.EnvSealPublicKeys, k.Public().String(), config.EnvSealPrivateKeys, k.Secret())
	return err
}
