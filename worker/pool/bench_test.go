package pool_test

import (
	"io"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/worker/demoserver"
	"github.com/toolbus/toolbus/worker/internal/workertest"
	"github.com/toolbus/toolbus/worker/pool"
)

// BenchmarkPool_Call is one synchronous tools/call through a started worker
// pool, one at a time: published on the call subject of an embedded NATS
// server, taken by the pool's endpoint, dispatched to a call slot, handled
// (admitted, sent upstream on a warm pooled client of a streamable HTTP
// demo server speaking 2025-11-25, in the same process) and answered on the
// reply subject, where the benchmark reads it. Everything in the process is
// counted: the NATS server's and the demo server's work too, and the
// caller's. Each call carries a token sealed for it, sealed before the timer
// starts; the log goes to io.Discard.
func BenchmarkPool_Call(b *testing.B) {
	ns := contractstest.StartNATS(b)
	nc := ns.Connect(b)
	keys := workertest.NewKeys(b)
	demo := workertest.StartDemo(b, demoserver.Options{}, demoserver.TransportHTTP)
	cfg := workertest.Config(b, map[string]*config.Server{"demo": {URL: demo.URL}}, config.Worker{})
	workertest.StartPool(b, cfg, ns.Connect(b), keys.Opener, zerolog.New(io.Discard), pool.WithName("bench-worker"), pool.WithoutJobs())
	inbox := nats.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		b.Fatal(err)
	}
	subject := contracts.CallSubject("demo")
	call := workertest.Call{Server: "demo", Tool: demoserver.ToolEcho, Args: `{"text":"hello"}`, Token: "Bearer bench-user", Timeout: time.Minute}
	do := func(m *nats.Msg) {
		if err := nc.PublishMsg(m); err != nil {
			b.Fatal(err)
		}
		reply, err := sub.NextMsg(contractstest.WaitTimeout)
		if err != nil {
			b.Fatal(err)
		}
		if resp, err := contracts.DecodeCallResponse(workertest.ReplyOf(reply)); err != nil || resp.Error != nil {
			b.Fatalf("reply %+v: %v", resp, err)
		}
	}
	do(workertest.Msg(b, subject, inbox, keys.Request(b, call, inbox))) // the pooled client's handshake
	msgs := make([]*nats.Msg, b.N)
	for i := range msgs {
		msgs[i] = workertest.Msg(b, subject, inbox, keys.Request(b, call, inbox))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		do(msgs[i])
	}
}
