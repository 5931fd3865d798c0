package upstream_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/worker/demoserver"
	"github.com/toolbus/toolbus/worker/internal/workertest"
	"github.com/toolbus/toolbus/worker/upstream"
)

// benchCalls calls echo b.N times through a pool to a streamable HTTP demo
// server (stateless: one that keeps no sessions) speaking the production
// default revision, with token(i) on call i, and reports the upstream HTTP
// requests and the clients opened per call. The pool has the default
// max_clients, so beyond it each new client evicts one (a DELETE, where
// the server has sessions).
func benchCalls(b *testing.B, stateless bool, token func(i int) string) {
	benchCallsWith(b, stateless, config.DefaultUpstreamProtocol, []byte(`{"text":"hello"}`), token)
}

func benchCallsWith(b *testing.B, stateless bool, protocol string, args []byte, token func(i int) string) {
	var requests atomic.Int64
	count := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			requests.Add(1)
			next.ServeHTTP(w, r)
		})
	}
	run := workertest.StartDemo(b, demoserver.Options{Wrap: count, Stateless: stateless}, config.TransportHTTP)
	srv := httpServer("demo", config.TransportHTTP, run.URL)
	srv.ProtocolVersion = protocol
	p := upstream.New(upstream.Options{})
	b.Cleanup(func() { _ = p.Close() })
	ctx := context.Background()
	if _, err := p.CallTool(ctx, srv, contracts.NewToken("Bearer warm"), demoserver.ToolEcho, args); err != nil {
		b.Fatal(err)
	}
	requests.Store(0)
	before := p.Stats().Connects
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := p.CallTool(ctx, srv, contracts.NewToken(token(i)), demoserver.ToolEcho, args); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(requests.Load())/float64(b.N), "requests/op")
	b.ReportMetric(float64(p.Stats().Connects-before)/float64(b.N), "clients/op")
}

// BenchmarkCallTool_OneUser: every call with the same credential (a warm
// pooled client).
func BenchmarkCallTool_OneUser(b *testing.B) {
	benchCalls(b, false, func(int) string { return "Bearer warm" })
}

// BenchmarkCallTool_64KiBArguments: one user, 64 KiB of arguments (and so
// of result: echo returns them).
func BenchmarkCallTool_64KiBArguments(b *testing.B) {
	args := []byte(`{"text":"` + strings.Repeat("x", 64<<10) + `"}`)
	benchCallsWith(b, false, config.DefaultUpstreamProtocol, args, func(int) string { return "Bearer warm" })
}

// BenchmarkCallTool_NewUserEachCall: every call is a user's first (a new
// session each time).
func BenchmarkCallTool_NewUserEachCall(b *testing.B) {
	benchCalls(b, false, func(i int) string { return "Bearer user-" + strconv.Itoa(i) })
}

// BenchmarkCallTool_NewUserEachCall_Stateless: the same against a server
// that keeps no sessions.
func BenchmarkCallTool_NewUserEachCall_Stateless(b *testing.B) {
	benchCalls(b, true, func(i int) string { return "Bearer user-" + strconv.Itoa(i) })
}

// BenchmarkCallTool_NewUserEachCall_Latest: a new user each call, on the
// 2026-07-28 revision (protocol_version latest).
func BenchmarkCallTool_NewUserEachCall_Latest(b *testing.B) {
	benchCallsWith(b, false, config.ProtocolLatest, []byte(`{"text":"hello"}`), func(i int) string { return "Bearer user-" + strconv.Itoa(i) })
}

// BenchmarkCallTool_1MiBArguments: one user, 1 MiB of arguments (and so of
// result), on the session-based revision, whose tools/call takes the one
// JSON pass per side path (fastcall.go). The demo server's own work (mcp-go
// decodes the request and encodes the result) is counted too.
func BenchmarkCallTool_1MiBArguments(b *testing.B) {
	args := []byte(`{"text":"` + strings.Repeat("x", 1<<20) + `"}`)
	benchCallsWith(b, false, config.DefaultUpstreamProtocol, args, func(int) string { return "Bearer warm" })
}

// BenchmarkCallTool_1MiBCannedAnswer: the worker's side of a 1 MiB echo on
// the session-based revision alone: the server reads the request without
// decoding it and writes a prepared answer of the same size.
func BenchmarkCallTool_1MiBCannedAnswer(b *testing.B) {
	args := []byte(`{"text":"` + strings.Repeat("x", 1<<20) + `"}`)
	result := []byte(`{"content":[{"type":"text","text":"` + strings.Repeat("x", 1<<20) + `"}]}`)
	h, err := demoserver.NewHandler(demoserver.Options{}, demoserver.TransportHTTP)
	if err != nil {
		b.Fatal(err)
	}
	idKey := []byte(`"id":`)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.ContentLength > 1<<20 {
			body, _ := io.ReadAll(r.Body)
			// The id is the request's second member: "toolbus-N".
			i := bytes.Index(body, idKey) + len(idKey)
			j := i + bytes.IndexByte(body[i+1:], '"') + 2
			w.Header().Set("Content-Type", "application/json")
			answer := make([]byte, 0, len(result)+64)
			answer = append(answer, `{"jsonrpc":"2.0","id":`...)
			answer = append(append(answer, body[i:j]...), `,"result":`...)
			answer = append(append(answer, result...), '}')
			_, _ = w.Write(answer)
			return
		}
		h.ServeHTTP(w, r)
	}))
	b.Cleanup(func() { ts.Close(); h.Close(context.Background()) })
	srv := httpServer("canned", config.TransportHTTP, ts.URL+demoserver.PathMCP)
	srv.ProtocolVersion = config.DefaultUpstreamProtocol
	p := upstream.New(upstream.Options{})
	b.Cleanup(func() { _ = p.Close() })
	ctx := context.Background()
	call := func() {
		raw, err := p.CallTool(ctx, srv, contracts.NewToken("Bearer warm"), demoserver.ToolEcho, args)
		if err != nil || len(raw) != len(result) {
			b.Fatalf("%d bytes, %v", len(raw), err)
		}
	}
	call()
	b.ReportAllocs()
	b.SetBytes(int64(len(args)))
	b.ResetTimer()
	for range b.N {
		call()
	}
}
