package dispatch

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/toolbus/toolbus/contracts"
)

// standIn answers call requests on server with answer(n, req), n counting
// from 1, and records each sealed token's nonce-bearing ciphertext.
func standIn(t *testing.T, nc *nats.Conn, opener *contracts.Opener, server string, answer func(n int) *contracts.Error) (requests func() int, tokens func() []string) {
	t.Helper()
	var mu sync.Mutex
	var seen []string
	sub, err := nc.Subscribe(contracts.CallSubject(server), func(m *nats.Msg) {
		req, err := contracts.DecodeCallRequest(requestOf(m))
		if err != nil {
			t.Error(err)
			return
		}
		if _, err := opener.Open(req.Token, req.Binding(m.Reply), time.Now()); err != nil {
			t.Errorf("attempt does not open: %v", err)
		}
		mu.Lock()
		seen = append(seen, string(req.Token.Ciphertext))
		n := len(seen)
		mu.Unlock()
		_ = respond(m, contracts.NewCallResponse(req.RequestID, json.RawMessage(`{"content":[]}`), answer(n)))
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return func() int {
			mu.Lock()
			defer mu.Unlock()
			return len(seen)
		}, func() []string {
			mu.Lock()
			defer mu.Unlock()
			return append([]string(nil), seen...)
		}
}

func TestDispatcher_RetriesOverloadedOnce(t *testing.T) {
	overloaded := contracts.NewError(contracts.CodeOverloaded, "no slot")
	tests := []struct {
		name     string
		answer   func(n int) *contracts.Error
		want     contracts.ErrorCode
		attempts int
	}{
		{"overloaded, then a result", func(n int) *contracts.Error {
			if n == 1 {
				return overloaded
			}
			return nil
		}, "", 2},
		{"overloaded twice: the second answer stands", func(int) *contracts.Error { return overloaded }, contracts.CodeOverloaded, 2},
		{"upstream_error is not retried: it may have run", func(int) *contracts.Error {
			return contracts.NewError(contracts.CodeUpstreamError, "boom")
		}, contracts.CodeUpstreamError, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, nc, opener := newDispatcher(t)
			requests, tokens := standIn(t, nc, opener, "busy", tt.answer)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := d.Call(ctx, NewRequestID(), Call{KeyID: "k", Server: "busy", Tool: "t", Token: contracts.NewToken("Bearer u"), Timeout: 5 * time.Second})
			var got contracts.ErrorCode
			if err != nil {
				got = err.Code
			}
			if got != tt.want || requests() != tt.attempts {
				t.Fatalf("code %q after %d attempts, want %q after %d", got, requests(), tt.want, tt.attempts)
			}
			// Each attempt is sealed afresh (a worker that opened the first
			// one would refuse the same bytes as a replay).
			if ts := tokens(); len(ts) == 2 && ts[0] == ts[1] {
				t.Error("the retry reused the first attempt's sealed token")
			}
		})
	}
}
