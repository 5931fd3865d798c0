// Command ingress is toolbus's HTTP front door: it checks gateway keys,
// seals the user's credential and sends tool calls to the workers over NATS.
//
//	go run ./ingress --dev [--config FILE]   everything in one process
//	go run ./ingress --config FILE           production: external NATS, separate workers
//	go run ./ingress check --config FILE     validate a configuration, print it with secrets redacted
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/natsconn"
	"github.com/toolbus/toolbus/contracts/telemetry"
	"github.com/toolbus/toolbus/ingress/gateway"
)

// Shutdown bounds beyond ingress.shutdown_timeout.
const (
	natsDrainTimeout   = 10 * time.Second
	devStopTimeout     = 10 * time.Second
	tracingStopTimeout = 5 * time.Second
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd := run
	if len(os.Args) > 1 && os.Args[1] == "keys" {
		cmd = func(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
			return runKeys(ctx, args[1:], stdout, stderr, getenv)
		}
	}
	if len(os.Args) > 1 && os.Args[1] == "check" {
		cmd = func(_ context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
			return runCheck(args[1:], stdout, stderr, getenv)
		}
	}
	if len(os.Args) > 1 && os.Args[1] == "healthcheck" {
		cmd = func(ctx context.Context, args []string, stdout, stderr io.Writer, _ func(string) string) error {
			return telemetry.Healthcheck(ctx, "ingress", "http://127.0.0.1:4000/readyz", args[1:], stdout, stderr)
		}
	}
	if err := cmd(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "ingress:", err)
		os.Exit(1)
	}
}

// run starts the ingress and serves until ctx ends, then shuts down.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("ingress", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dev := fs.Bool("dev", false, "run everything in one process: embedded NATS, a worker pool and a demo MCP server")
	configPath := fs.String("config", "", "configuration file (a LiteLLM config.yaml works as is)")
	strict := fs.Bool("strict", false, "treat every configuration warning (unknown key, LiteLLM key not implemented) as an error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// JSON lines, or console lines in dev mode when stderr is a terminal.
	base, closeLog := telemetry.NewLogger(stderr, *dev)
	defer closeLog() // last: every line below is written out
	log := base.With().Str("component", "ingress").Logger()

	if *configPath == "" && !*dev {
		return errors.New("--config FILE is required (or --dev to run on the embedded default)")
	}
	cfg, warnings, err := loadConfig(*configPath, *strict, getenv)
	if err != nil {
		return err
	}
	logWarnings(log, warnings)

	// Metrics in a registry of this process's own; traces exported only
	// when tracing is configured (contracts/telemetry).
	reg := telemetry.NewRegistry()
	tracing, err := telemetry.StartTracing(ctx, cfg.Tracing, telemetry.ServiceIngress, log)
	if err != nil {
		return err
	}
	defer stopBounded(tracing.Shutdown, tracingStopTimeout, log, "tracing")

	var (
		nc     *nats.Conn
		sealer *contracts.Sealer
		banner func(w io.Writer, url string)
	)
	if *dev {
		env, err := startEmbedded(ctx, cfg, base, reg, tracing.Tracer())
		if err != nil {
			return err
		}
		defer stopBounded(env.stop, devStopTimeout, log, "dev environment")
		nc, sealer, banner = env.conn, env.sealer, env.banner
	} else {
		keys, err := cfg.Seal.ParsePublicKeys()
		if err != nil {
			return err
		}
		if len(keys) == 0 {
			return errors.New("no sealing public key: set seal.public_keys or TOOLBUS_SEAL_PUBLIC_KEYS (generate a pair with: go run ./worker keygen)")
		}
		sealer = contracts.NewSealer(keys[0], cfg.Seal.EpochTTL.D())
		if nc, err = connectNATS(cfg.NATS, log); err != nil {
			return err
		}
		defer func() {
			if err := natsconn.Drain(nc, natsDrainTimeout); err != nil {
				log.Warn().Err(err).Msg("NATS connection closed before its drain finished")
			}
		}()
	}

	// The ingress itself: keys, front-door policy, dispatcher, catalog,
	// jobs, MCP endpoint and router, measured in reg and traced.
	gw, err := gateway.Assemble(gateway.Options{
		Config: cfg, Conn: nc, Sealer: sealer, Logger: base,
		Registry: reg, Tracer: tracing.Tracer(), WatchKeys: true,
	})
	if err != nil {
		return err
	}
	defer gw.Close()

	// Go's own errors (a malformed request, oversized headers) in JSON too.
	ln, err := gateway.Listen(cfg.Ingress.Listen)
	if err != nil {
		return err
	}
	srv := gateway.NewServer(cfg, gw.Handler)
	url := "http://" + ln.Addr().String()
	log.Info().Str("listen", url).Bool("dev", *dev).Strs("servers", cfg.ServerNames()).Msg("ingress listening")
	if banner != nil {
		banner(stdout, url)
	} else {
		fmt.Fprintf(stdout, "toolbus ingress listening on %s\n", url)
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	log.Info().Msg("shutting down: draining in-flight requests")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.Ingress.ShutdownTimeout.D())
	defer cancel()
	gw.CloseStreams() // legacy SSE streams end; Shutdown does not wait for them
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn().Err(err).Msg("shutdown did not finish in time")
		_ = srv.Close()
	}
	return nil
}

// connectNATS connects the way every ingress does (contracts/natsconn),
// except that while disconnected, publishing fails at once instead of being
// buffered: a call answers 503 no_workers ("the message bus is
// unavailable") rather than waiting out its timeout, and /readyz reports
// not ready.
func connectNATS(c config.NATS, log zerolog.Logger) (*nats.Conn, error) {
	return natsconn.Connect(c, natsconn.NameIngress, log, nats.ReconnectBufSize(-1))
}

// devEnv is what the ingress uses of dev mode's embedded environment
// (startEmbedded, in dev.go; a build with -tags nodev has none).
type devEnv struct {
	conn   *nats.Conn
	sealer *contracts.Sealer
	stop   func(context.Context) error
	banner func(w io.Writer, url string) // prints the dev-mode banner with its curl examples
}

func stopBounded(stop func(context.Context) error, bound time.Duration, log zerolog.Logger, what string) {
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	if err := stop(ctx); err != nil {
		log.Warn().Err(err).Str("what", what).Msg("stop failed")
	}
}
