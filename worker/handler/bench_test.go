package handler_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/worker/demoserver"
	"github.com/toolbus/toolbus/worker/handler"
	"github.com/toolbus/toolbus/worker/internal/workertest"
	"github.com/toolbus/toolbus/worker/upstream"
)

// BenchmarkHandler_Call is one whole synchronous tools/call on the worker,
// as the pool makes it: the message decoded, admitted (its seal opened, its
// binding checked, the replay guard), sent upstream on a warm pooled client
// (a streamable HTTP demo server speaking the default revision, 2025-11-25,
// in the same process, its own work counted too), and its reply encoded,
// with the request's log line written (to io.Discard). Each call carries a
// token sealed for it (the replay guard refuses a seal seen before): they
// are sealed before the timer starts.
func BenchmarkHandler_Call(b *testing.B) {
	keys := workertest.NewKeys(b)
	demo := workertest.StartDemo(b, demoserver.Options{}, demoserver.TransportHTTP)
	cfg := workertest.Config(b, map[string]*config.Server{"demo": {URL: demo.URL}}, config.Worker{})
	log := zerolog.New(io.Discard)
	up := upstream.New(upstream.Options{Logger: log})
	b.Cleanup(func() { _ = up.Close() })
	h := handler.New(handler.Config{File: cfg, Opener: keys.Opener, Upstream: up, Logger: log})
	subject := contracts.CallSubject("demo")
	call := workertest.Call{Server: "demo", Tool: demoserver.ToolEcho, Args: `{"text":"hello"}`, Token: "Bearer bench-user", Timeout: time.Minute}
	ctx := context.Background()
	serve := func(w contracts.Wire) {
		in := handler.CallOp.Decode(subject, reply, w)
		payload, e := h.Handle(ctx, in)
		if _, ok := in.Encode(payload, e); !ok || e != nil {
			b.Fatalf("reply %v, error %+v", ok, e)
		}
	}
	serve(workertest.Wire(b, keys.Request(b, call, reply))) // the pooled client's handshake
	wires := make([]contracts.Wire, b.N)
	for i := range wires {
		wires[i] = workertest.Wire(b, keys.Request(b, call, reply))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		serve(wires[i])
	}
}
