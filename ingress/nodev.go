//go:build nodev

package main

import (
	"context"
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/telemetry"
)

// errNoDev is --dev in a build made with -tags nodev (the container image):
// it links neither the embedded NATS server nor a worker.
var errNoDev = errors.New("--dev: this ingress was built without dev mode (-tags nodev, as the container image is); " +
	"run it with --config FILE against NATS and workers (see deploy/), or run `go run ./ingress --dev` from the source")

func startEmbedded(context.Context, *config.File, zerolog.Logger, prometheus.Registerer, *telemetry.Tracer) (*devEnv, error) {
	return nil, errNoDev
}
