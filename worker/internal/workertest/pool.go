package workertest

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/worker/pool"
)

// StartPool builds and starts a worker pool for cfg on nc; it is stopped,
// bounded by contractstest.WaitTimeout, when the test ends.
func StartPool(t testing.TB, cfg *config.File, nc *nats.Conn, opener *contracts.Opener, log zerolog.Logger, opts ...pool.Option) *pool.Pool {
	t.Helper()
	p, err := pool.New(cfg, nc, opener, log, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(contractstest.Ctx(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), contractstest.WaitTimeout)
		defer cancel()
		_ = p.Stop(ctx)
	})
	return p
}
