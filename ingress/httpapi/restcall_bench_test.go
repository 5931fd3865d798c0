package httpapi_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/contracts/telemetry"
	ingressgw "github.com/toolbus/toolbus/ingress/gateway"
	"github.com/toolbus/toolbus/ingress/internal/gatewaytest"
)

// BenchmarkRESTCall is one POST /mcp/tools/call through the ingress as
// gateway.Assemble builds it (its Gin router with every middleware, the
// front door, the dispatcher, metrics and the access log, written to
// io.Discard), served in this goroutine by ServeHTTP, to a stand-in worker
// on an embedded NATS server that answers with the arguments. What it
// counts is the ingress's per-call work besides net/http's own (reading the
// request, writing the response), plus the stand-in worker's and the NATS
// server's: allocs/op and B/op compare changes to the ingress.
func BenchmarkRESTCall(b *testing.B) {
	ns := contractstest.StartNATS(b)
	key, err := contracts.GenerateKeyPair()
	if err != nil {
		b.Fatal(err)
	}
	cfg := &config.File{
		Keys:       []config.Key{{Name: "master", Key: gatewaytest.MasterKey}},
		MCPServers: map[string]*config.Server{"fast": {URL: "http://127.0.0.1:9/mcp"}},
	}
	cfg.Ingress.IdentitySecret = "bench-identity-secret-0123456789"
	cfg.Ingress.KeyLimits = config.KeyLimits{MaxRequests: -1, MaxStreams: -1}
	if err := cfg.Normalize(); err != nil {
		b.Fatal(err)
	}
	gw, err := ingressgw.Assemble(ingressgw.Options{
		Config: cfg, Conn: ns.Connect(b), Sealer: contracts.NewSealer(key.Public(), 0),
		Logger: zerolog.New(io.Discard), Registry: telemetry.NewRegistry(),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(gw.Close)

	worker := ns.Connect(b)
	// The stand-in worker reads the request id from the reply subject (the
	// dispatcher's inbox, then the id), so that it adds little to the count.
	result := []byte(`{"content":[{"type":"text","text":"hello"}]}`)
	sub, err := worker.QueueSubscribe(contracts.CallSubject("fast"), "q", func(m *nats.Msg) {
		w, err := contracts.EncodeReply(contracts.NewCallResponse(m.Reply[strings.LastIndexByte(m.Reply, '.')+1:], result, nil))
		if err != nil {
			b.Error(err)
			return
		}
		_ = m.RespondMsg(&nats.Msg{Header: nats.Header{contracts.HeaderReply: {w.Header}}, Data: w.Body})
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := worker.Flush(); err != nil {
		b.Fatal(err)
	}

	body := []byte(`{"name":"fast-echo","arguments":{"text":"hello"}}`)
	base, err := http.NewRequestWithContext(contractstest.Ctx(b), http.MethodPost, "http://127.0.0.1/mcp/tools/call", nil)
	if err != nil {
		b.Fatal(err)
	}
	base.Header = http.Header{
		"X-Litellm-Key": {gatewaytest.MasterKey}, "Authorization": {"Bearer user-token"},
		"Content-Type": {"application/json"}, "Accept": {"application/json"}, "User-Agent": {"bench"},
	}
	base.ContentLength = int64(len(body))
	base.RemoteAddr = "127.0.0.1:50000"
	rd := &benchBody{}
	w := &benchWriter{header: http.Header{}}
	call := func() {
		req := *base
		rd.Reset(body)
		req.Body = rd
		w.reset()
		gw.Handler.ServeHTTP(w, &req)
		if w.status != http.StatusOK {
			b.Fatalf("status %d: %s", w.status, w.body.Bytes())
		}
	}
	call()
	b.ReportAllocs()
	for b.Loop() {
		call()
	}
}

// benchBody is a request body read from memory, reused call after call.
type benchBody struct{ bytes.Reader }

func (*benchBody) Close() error { return nil }

// benchWriter is a ResponseWriter reused call after call.
type benchWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *benchWriter) reset() {
	clear(w.header)
	w.status = 0
	w.body.Reset()
}

func (w *benchWriter) Header() http.Header { return w.header }

func (w *benchWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

// SetReadDeadline is there as net/http's writer has it (readBodyFirst).
func (w *benchWriter) SetReadDeadline(time.Time) error { return nil }

func (w *benchWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}
