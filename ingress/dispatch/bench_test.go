package dispatch

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/contractstest"
)

// BenchmarkDispatcher_Call is one call's round trip through an embedded
// NATS server to a stand-in worker (on a connection of its own) that
// decodes the request's header and answers with the arguments as the
// result: the dispatcher's encoding and sealing, the bus both ways and the
// reply's hand-over to the waiting call.
func BenchmarkDispatcher_Call(b *testing.B) {
	ns := contractstest.StartNATS(b)
	key, err := contracts.GenerateKeyPair()
	if err != nil {
		b.Fatal(err)
	}
	d, err := New(ns.Connect(b), contracts.NewSealer(key.Public(), 0), zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = d.Close() })
	worker := ns.Connect(b)
	sub, err := worker.Subscribe(contracts.CallSubject("jira"), func(m *nats.Msg) {
		req, err := contracts.DecodeCallRequest(requestOf(m))
		if err != nil {
			b.Error(err)
			return
		}
		_ = respond(m, contracts.NewCallResponse(req.RequestID, req.Arguments, nil))
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := worker.Flush(); err != nil {
		b.Fatal(err)
	}
	args := json.RawMessage(`{"summary":"New ticket","project":"TEST"}`)
	call := Call{KeyID: "k", Server: "jira", Tool: "t", Token: contracts.NewToken("Bearer u"), Timeout: 10 * time.Second, Arguments: args}
	ctx := contractstest.Ctx(b)
	b.ReportAllocs()
	for b.Loop() {
		if res, cerr := d.Call(ctx, NewRequestID(), call); cerr != nil || len(res) != len(args) {
			b.Fatalf("%s %v", res, cerr)
		}
	}
}
