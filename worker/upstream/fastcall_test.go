package upstream_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/worker/demoserver"
	"github.com/toolbus/toolbus/worker/internal/workertest"
	"github.com/toolbus/toolbus/worker/upstream"
)

// The tools/call of a client on the session-based revision goes out with
// its arguments spliced in and its answer read in one pass (fastcall.go).
// These tests run it against real mcp-go servers and against answers
// written by hand.

// TestPool_FastCall_1MiBEcho: 1 MiB of arguments (with whitespace, escapes
// and characters encoding/json escapes) reach an mcp-go server - with
// sessions and without - byte for byte as the caller sent them, and its
// echo comes back whole.
func TestPool_FastCall_1MiBEcho(t *testing.T) {
	t.Parallel()
	text := strings.Repeat(`<a&b> "q" é\ `, (1<<20)/16)
	quoted, err := json.Marshal(text)
	if err != nil {
		t.Fatal(err)
	}
	args := json.RawMessage("{ \"text\" :\n " + strings.ReplaceAll(string(quoted), `\u003c`, `<`) + " , \"n\": 1.50 }")
	for _, stateless := range []bool{false, true} {
		t.Run(fmt.Sprintf("stateless=%v", stateless), func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var gotArgs []json.RawMessage
			capture := func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.Method == http.MethodPost {
						body := new(bytes.Buffer)
						_, _ = body.ReadFrom(r.Body)
						r.Body.Close()
						var msg struct {
							Method string `json:"method"`
							Params struct {
								Arguments json.RawMessage `json:"arguments"`
							} `json:"params"`
						}
						if json.Unmarshal(body.Bytes(), &msg) == nil && msg.Method == "tools/call" {
							mu.Lock()
							gotArgs = append(gotArgs, msg.Params.Arguments)
							mu.Unlock()
						}
						r.Body = readCloser{bytes.NewReader(body.Bytes())}
					}
					next.ServeHTTP(w, r)
				})
			}
			run := workertest.StartDemo(t, demoserver.Options{Wrap: capture, Stateless: stateless, MaxBodyBytes: 4 << 20}, config.TransportHTTP)
			srv := httpServer("demo", config.TransportHTTP, run.URL)
			srv.ProtocolVersion = legacyProtocol
			p := newPool(t, upstream.Options{}, nil)
			ctx := contractstest.Ctx(t)
			for range 2 { // a new client, then a pooled one
				raw, err := p.CallTool(ctx, srv, contracts.NewToken("Bearer a"), demoserver.ToolEcho, args)
				if err != nil {
					t.Fatal(err)
				}
				if r := decodeResult(t, raw); len(r.Content) != 1 || r.Content[0].Text != text {
					t.Fatalf("echo returned %d contents, text of %d bytes; want %d", len(r.Content), len(raw), len(text))
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if len(gotArgs) != 2 {
				t.Fatalf("the server saw %d calls, want 2", len(gotArgs))
			}
			for _, got := range gotArgs {
				if !reflect.DeepEqual(upstream.DecodeNumbers(t, got), upstream.DecodeNumbers(t, args)) {
					t.Errorf("the server got arguments of %d bytes that differ from the %d sent", len(got), len(args))
				}
				// Spliced as they were, not compacted or escaped again.
				if !bytes.Equal(got, args) {
					t.Errorf("the server got arguments of %d bytes, not the %d sent as they were", len(got), len(args))
				}
			}
		})
	}
}

// interceptLegacy is interceptCalls where answer also gets the call's
// params, with a pool and a server configuration on the session-based
// revision.
func interceptLegacy(t *testing.T, answer func(w http.ResponseWriter, id json.RawMessage, params map[string]json.RawMessage)) (*upstream.Pool, *config.Server) {
	t.Helper()
	url := interceptToolCalls(t, func(w http.ResponseWriter, _ *http.Request, id json.RawMessage, params map[string]json.RawMessage) {
		answer(w, id, params)
	})
	srv := httpServer("demo", config.TransportHTTP, url)
	srv.ProtocolVersion = legacyProtocol
	return newPool(t, upstream.Options{}, nil), srv
}

// TestPool_FastCall_EventStream: an answer that is an event stream - a
// progress and a log notification, then the response - gives the result
// as written and relays both notifications to the call.
func TestPool_FastCall_EventStream(t *testing.T) {
	t.Parallel()
	const result = `{"content":[{"type":"text","text":"streamed"}],  "isError":false}`
	p, srv := interceptLegacy(t, func(w http.ResponseWriter, id json.RawMessage, params map[string]json.RawMessage) {
		var meta struct {
			ProgressToken json.RawMessage `json:"progressToken"`
		}
		_ = json.Unmarshal(params["_meta"], &meta)
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":%s,\"progress\":1,\"total\":2,\"message\":\"half\"}}\n\n", meta.ProgressToken)
		fmt.Fprintf(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"logger\":\"demo\",\"data\":\"working\"}}\n\n")
		fmt.Fprintf(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":%s}\n\n", id, result)
	})
	var mu sync.Mutex
	var progress []upstream.Progress
	var logs []json.RawMessage
	raw, err := p.CallTool(contractstest.Ctx(t), srv, contracts.NewToken("Bearer a"), "anything", json.RawMessage(`{}`),
		upstream.WithProgress(func(pr upstream.Progress) { mu.Lock(); progress = append(progress, pr); mu.Unlock() }),
		upstream.WithLogs(func(m json.RawMessage) { mu.Lock(); logs = append(logs, m); mu.Unlock() }))
	if err != nil || string(raw) != result {
		t.Fatalf("CallTool = %s, %v; want %s", raw, err, result)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(progress) != 1 || progress[0].Progress != 1 || progress[0].Message != "half" {
		t.Errorf("progress = %+v, want the one notification", progress)
	}
	if len(logs) != 1 || !strings.Contains(string(logs[0]), `"working"`) {
		t.Errorf("logs = %s, want the one notification", logs)
	}
}

// TestPool_FastCall_Failures: what the upstream answers a tools/call with,
// and what the call fails with. No answer that is not one JSON object with
// an object result is ever passed on as a result.
func TestPool_FastCall_Failures(t *testing.T) {
	t.Parallel()
	const challenge = `Bearer realm="demo", error="invalid_token"`
	for _, tc := range []struct {
		name   string
		answer func(w http.ResponseWriter, id json.RawMessage)
		max    int64
		want   contracts.ErrorCode
	}{
		{"json-rpc error", func(w http.ResponseWriter, id json.RawMessage) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"error":{"code":-32602,"message":"bad arguments"}}`, id)
		}, 0, contracts.CodeInvalidRequest},
		{"401", func(w http.ResponseWriter, id json.RawMessage) {
			w.Header().Set("WWW-Authenticate", challenge)
			http.Error(w, "no", http.StatusUnauthorized)
		}, 0, contracts.CodeUpstreamUnauthorized},
		{"over max_result_bytes", func(w http.ResponseWriter, id json.RawMessage) {
			streamHuge(w, id, false, http.StatusOK, 2<<20)
		}, 1 << 20, contracts.CodeResultTooLarge},
		{"event over max_result_bytes", func(w http.ResponseWriter, id json.RawMessage) {
			streamHuge(w, id, true, http.StatusOK, 2<<20)
		}, 1 << 20, contracts.CodeResultTooLarge},
		{"truncated", func(w http.ResponseWriter, id json.RawMessage) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"cut`, id)
		}, 0, contracts.CodeUpstreamError},
		{"not JSON", func(w http.ResponseWriter, id json.RawMessage) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `<html>oops</html>`)
		}, 0, contracts.CodeUpstreamError},
		{"bad JSON inside the result", func(w http.ResponseWriter, id json.RawMessage) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"x"},]}}`, id)
		}, 0, contracts.CodeUpstreamError},
		{"result not an object", func(w http.ResponseWriter, id json.RawMessage) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":["x"]}`, id)
		}, 0, contracts.CodeUpstreamError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, srv := interceptLegacy(t, func(w http.ResponseWriter, id json.RawMessage, _ map[string]json.RawMessage) { tc.answer(w, id) })
			srv.MaxResultBytes = tc.max
			raw, err := p.CallTool(contractstest.Ctx(t), srv, contracts.NewToken("Bearer a"), "anything", json.RawMessage(`{"a":1}`))
			var ue *upstream.Error
			if !errors.As(err, &ue) || ue.Wire.Code != tc.want {
				t.Fatalf("CallTool = %.100s, %v; want %s", raw, err, tc.want)
			}
			if tc.want == contracts.CodeUpstreamUnauthorized && ue.Wire.WWWAuthenticate != challenge {
				t.Errorf("WWWAuthenticate = %q, want %q", ue.Wire.WWWAuthenticate, challenge)
			}
		})
	}
}
