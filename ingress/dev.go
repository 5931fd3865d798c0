//go:build !nodev

package main

import (
	"context"
	"fmt"
	"io"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/telemetry"
	"github.com/toolbus/toolbus/ingress/devmode"
)

// startEmbedded starts dev mode's embedded environment (ingress/devmode): an
// embedded NATS server, a worker pool and the demo MCP server, in this
// process. Builds with -tags nodev leave it out (nodev.go).
func startEmbedded(ctx context.Context, cfg *config.File, log zerolog.Logger, reg prometheus.Registerer, tracer *telemetry.Tracer) (*devEnv, error) {
	env, err := devmode.Start(ctx, cfg, log, devmode.WithTelemetry(reg, tracer))
	if err != nil {
		return nil, err
	}
	return &devEnv{
		conn: env.Conn, sealer: env.Sealer, stop: env.Stop,
		banner: func(w io.Writer, url string) { printBanner(w, url, env) },
	}, nil
}

func printBanner(w io.Writer, url string, env *devmode.Env) {
	key := devmode.DevKey
	if !env.AddedDevKey {
		key = "<one of your configured keys>"
	}
	fmt.Fprintf(w, `toolbus dev mode: ingress, embedded NATS, a worker pool and a demo MCP server in one process.

  ingress     %[1]s
  gateway key %[2]s
  demo server %[3]s (tools: echo, whoami, slow, fail, big, ask, sample, touch)

Try it - the demo server's whoami tool answers with the Authorization header it received:

  curl -X POST "%[1]s/mcp/tools/call" \
    -H "x-litellm-key: %[2]s" -H "Authorization: Bearer user-token-5678" \
    -H "Content-Type: application/json" \
    -d '{"name": "whoami", "arguments": {}}'

  curl "%[1]s/mcp-rest/tools/list" -H "x-litellm-key: %[2]s"

MCP clients: %[1]s/mcp (every server, tools named <server>-<tool>) or %[1]s/demo/mcp,
with the header x-litellm-key: %[2]s (and the user's Authorization).

Press Ctrl-C to stop.
`, url, key, env.DemoURL)
}
