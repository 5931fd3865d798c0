package main

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/worker/demoserver"
	"github.com/toolbus/toolbus/worker/internal/workertest"
)

// A worker stopped while NATS is down exits well within its drain
// timeout: nothing that needs the bus (draining its subscriptions, the
// connection's own drain) is waited for once the bus is gone.
func TestRun_StopsPromptlyWhileNATSIsDown(t *testing.T) {
	t.Parallel()
	n := contractstest.StartNATS(t)
	demo := workertest.StartDemo(t, demoserver.Options{}, demoserver.TransportHTTP)
	key, err := contracts.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	const drain = 10 * time.Second
	path := writeConfig(t, fmt.Sprintf(`mcp_servers:
  demo:
    url: %s
nats:
  url: %s
seal:
  private_keys: [%s]
worker:
  drain_timeout: %s
`, demo.URL, n.URL, key.Secret(), drain))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr contractstest.LogBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"--config", path}, &bytes.Buffer{}, &stderr) }()
	nc := n.Connect(t)
	contractstest.Eventually(t, "the worker to answer pings", func() bool {
		_, err := nc.Request(contracts.PingSubject, nil, 100*time.Millisecond)
		return err == nil
	})
	n.Server.Shutdown()
	n.Server.WaitForShutdown()

	start := time.Now()
	cancel()
	select {
	case <-done:
	case <-time.After(drain):
		t.Fatalf("the worker did not exit within its drain timeout (%s) with NATS down", drain)
	}
	t.Logf("exited %s after the signal", time.Since(start))
	if took := time.Since(start); took > drain/2 {
		t.Errorf("exit took %s, want well within the drain timeout", took)
	}
}
