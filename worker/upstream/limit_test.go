package upstream_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"testing"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/worker/demoserver"
	"github.com/toolbus/toolbus/worker/upstream"
)

// interceptCalls starts a demo server behind a proxy whose tools/call
// answers are written by answer (given the request's JSON-RPC id and
// Authorization); everything else reaches the demo server.
func interceptCalls(t *testing.T, answer func(w http.ResponseWriter, id json.RawMessage, auth string)) string {
	t.Helper()
	return interceptToolCalls(t, func(w http.ResponseWriter, r *http.Request, id json.RawMessage, _ map[string]json.RawMessage) {
		answer(w, id, r.Header.Get("Authorization"))
	})
}

// interceptToolCalls is interceptCalls where answer gets the whole HTTP
// request and the call's params.
func interceptToolCalls(t *testing.T, answer func(w http.ResponseWriter, r *http.Request, id json.RawMessage, params map[string]json.RawMessage)) string {
	t.Helper()
	h, err := demoserver.NewHandler(demoserver.Options{}, demoserver.TransportHTTP)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			body := new(bytes.Buffer)
			_, _ = body.ReadFrom(r.Body)
			r.Body.Close()
			var msg struct {
				ID     json.RawMessage            `json:"id"`
				Method string                     `json:"method"`
				Params map[string]json.RawMessage `json:"params"`
			}
			if json.Unmarshal(body.Bytes(), &msg) == nil && msg.Method == "tools/call" {
				answer(w, r, msg.ID, msg.Params)
				return
			}
			r.Body = readCloser{bytes.NewReader(body.Bytes())}
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { ts.Close(); h.Close(context.Background()) })
	return ts.URL + demoserver.PathMCP
}

// streamHuge writes a tools/call result with a text of size bytes, in
// chunks, until the reader goes away.
func streamHuge(w http.ResponseWriter, id json.RawMessage, sse bool, status int, size int) {
	head := fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"`, id)
	if sse {
		w.Header().Set("Content-Type", "text/event-stream")
		head = "event: message\ndata: " + head
	} else {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(status)
	if _, err := writeString(w, head); err != nil {
		return
	}
	chunk := bytes.Repeat([]byte("a"), 64<<10)
	for written := 0; written < size; written += len(chunk) {
		if _, err := w.Write(chunk); err != nil {
			return
		}
	}
	_, _ = writeString(w, `"}]}}`+"\n\n")
}

func writeString(w http.ResponseWriter, s string) (int, error) { return w.Write([]byte(s)) }

// TestPool_MaxResultBytes: a 200 MiB answer - a JSON body, an event
// stream - is cut at max_result_bytes and fails result_too_large (an
// error status's body is cut shorter still), without the worker holding it: the bytes allocated
// while reading it stay far below its size.
func TestPool_MaxResultBytes(t *testing.T) {
	// Not parallel: the allocation count is the whole process's.
	const huge = 200 << 20
	for _, tc := range []struct {
		name     string
		sse      bool
		status   int
		want     contracts.ErrorCode
		protocol string
	}{
		{"json", false, http.StatusOK, contracts.CodeResultTooLarge, ""},
		{"event stream", true, http.StatusOK, contracts.CodeResultTooLarge, ""},
		// A failure's body is read no further than a JSON-RPC error needs.
		{"error status", false, http.StatusInternalServerError, contracts.CodeUpstreamError, ""},
		// The session-based revision's tools/call reads a JSON answer
		// itself (fastcall.go).
		{"json, sessions", false, http.StatusOK, contracts.CodeResultTooLarge, legacyProtocol},
		{"event stream, sessions", true, http.StatusOK, contracts.CodeResultTooLarge, legacyProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := interceptCalls(t, func(w http.ResponseWriter, id json.RawMessage, _ string) {
				streamHuge(w, id, tc.sse, tc.status, huge)
			})
			p := newPool(t, upstream.Options{}, nil)
			srv := httpServer("big", config.TransportHTTP, u)
			srv.MaxResultBytes = config.DefaultMaxResultBytes
			srv.ProtocolVersion = tc.protocol
			wantWhoamiFails := func() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				_, err := p.CallTool(contractstest.Ctx(t), srv, contracts.NewToken("Bearer a"), "anything", nil)
				runtime.ReadMemStats(&after)
				var ue *upstream.Error
				if !errors.As(err, &ue) || ue.Wire.Code != tc.want {
					t.Fatalf("err = %v, want %s", err, tc.want)
				}
				if grown := after.TotalAlloc - before.TotalAlloc; grown > 64<<20 {
					t.Errorf("reading the answer allocated %d MiB, want < 64 MiB", grown>>20)
				}
			}
			wantWhoamiFails()
			wantWhoamiFails() // the client is still usable, and still bounded
		})
	}
}

// TestPool_NoUpstreamTextInErrors: an upstream that echoes the user's
// credential in its failure - JSON-escaped, URL-encoded, truncated, or a
// credential shorter than 8 characters - gets none of it into the error
// the caller receives, its logged detail or the worker's logs.
func TestPool_NoUpstreamTextInErrors(t *testing.T) {
	t.Parallel()
	tokens := []string{`Bearer s3cr3t<&>"/user-token-value`, "Bearer zQ7x"}
	forms := func(token string) []string {
		_, cred, _ := strings.Cut(token, " ")
		escaped, _ := json.Marshal(cred)
		return []string{
			cred,
			strings.Trim(string(escaped), `"`),
			url.QueryEscape(cred),
			url.PathEscape(cred),
			cred[:len(cred)*2/3],
		}
	}
	echo := func(auth string) string {
		return "rejected credential: " + strings.Join(forms(auth), " | ")
	}
	answers := map[string]func(w http.ResponseWriter, id json.RawMessage, auth string){
		"status 500 text": func(w http.ResponseWriter, _ json.RawMessage, auth string) {
			http.Error(w, echo(auth), http.StatusInternalServerError)
		},
		"status 400 json": func(w http.ResponseWriter, _ json.RawMessage, auth string) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"detail": echo(auth)})
		},
		"json-rpc error": func(w http.ResponseWriter, id json.RawMessage, auth string) {
			w.Header().Set("Content-Type", "application/json")
			msg, _ := json.Marshal(echo(auth))
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"error":{"code":-32603,"message":%s,"data":%s}}`, id, msg, msg)
		},
	}
	for name, answer := range answers {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			logs := &contractstest.LogBuffer{}
			p := newPool(t, upstream.Options{}, logs)
			srv := httpServer("echoing", config.TransportHTTP, interceptCalls(t, answer))
			for _, token := range tokens {
				_, err := p.CallTool(contractstest.Ctx(t), srv, contracts.NewToken(token), "anything", nil)
				var ue *upstream.Error
				if !errors.As(err, &ue) {
					t.Fatalf("err = %v, want an *upstream.Error", err)
				}
				wire, _ := json.Marshal(ue.Wire)
				for _, f := range forms(token) {
					for where, text := range map[string]string{"the wire error": string(wire), "the detail": ue.Detail, "the logs": logs.String()} {
						if strings.Contains(text, f) {
							t.Errorf("%s holds %q: %s", where, f, text)
						}
					}
				}
				if ue.Detail == "" {
					t.Error("no detail")
				}
			}
		})
	}
}
