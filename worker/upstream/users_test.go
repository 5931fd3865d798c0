package upstream_test

import (
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/worker/demoserver"
	"github.com/toolbus/toolbus/worker/internal/workertest"
	"github.com/toolbus/toolbus/worker/upstream"
)

// requestsOf returns the JSON-RPC methods ("" for none) of the requests
// the upstream received with Authorization auth, oldest first.
func requestsOf(rec *demoserver.Recorder, auth string) []string {
	var out []string
	for _, r := range rec.Entries() {
		if r.Authorization == auth {
			out = append(out, r.Method+" "+r.RPCMethod)
		}
	}
	return out
}

// A new user's first call to a server with sessions opens exactly one
// session: initialize, notifications/initialized, then the call, all with
// the user's credential; the user's later calls reuse it.
func TestPool_NewUserOpensOneSession(t *testing.T) {
	t.Parallel()
	ctx := contractstest.Ctx(t)
	run := workertest.StartDemo(t, demoserver.Options{}, config.TransportHTTP)
	p := newPool(t, upstream.Options{}, nil)
	srv := httpServer("demo", config.TransportHTTP, run.URL)
	srv.ProtocolVersion = legacyProtocol

	const users = 6
	for round := range 2 {
		var wg sync.WaitGroup
		for i := range users {
			wg.Go(func() { wantWhoami(t, ctx, p, srv, userToken(i), userToken(i)) })
		}
		wg.Wait()
		if st := p.Stats(); st.Connects != users || st.Handshakes != users || st.Clients != users {
			t.Fatalf("round %d: Stats = %+v, want %d clients, each with one handshake", round, st, users)
		}
	}
	want := []string{"POST initialize", "POST notifications/initialized", "POST tools/call", "POST tools/call"}
	for i := range users {
		if got := requestsOf(run.Recorder, userToken(i)); !slices.Equal(got, want) {
			t.Errorf("user %d: upstream requests %q, want %q", i, got, want)
		}
	}
}

func userToken(i int) string { return fmt.Sprintf("Bearer user-%02d", i) }

// A server that answers initialize without a session ID keeps no session:
// after one client's handshake, a new user's first call is that call
// alone, with the user's credential set exactly and the negotiated
// protocol version, and no session is shared because none exists.
func TestPool_StatelessServer_NewUserSkipsHandshake(t *testing.T) {
	t.Parallel()
	ctx := contractstest.Ctx(t)
	run := workertest.StartDemo(t, demoserver.Options{Stateless: true}, config.TransportHTTP)
	p := newPool(t, upstream.Options{}, nil)
	srv := httpServer("demo", config.TransportHTTP, run.URL)
	srv.ProtocolVersion = legacyProtocol

	wantWhoami(t, ctx, p, srv, userToken(0), userToken(0))
	if got, want := requestsOf(run.Recorder, userToken(0)), []string{"POST initialize", "POST notifications/initialized", "POST tools/call"}; !slices.Equal(got, want) {
		t.Fatalf("first user: upstream requests %q, want %q", got, want)
	}

	const users = 8
	var wg sync.WaitGroup
	for i := 1; i <= users; i++ {
		wg.Go(func() {
			// Two calls each, at once: one client per user all the same.
			var inner sync.WaitGroup
			for range 2 {
				inner.Go(func() { wantWhoami(t, ctx, p, srv, userToken(i), userToken(i)) })
			}
			inner.Wait()
		})
	}
	wg.Wait()
	if st := p.Stats(); st.Handshakes != 1 || st.Connects != users+1 || st.Clients != users+1 {
		t.Errorf("Stats = %+v, want %d clients and one handshake", st, users+1)
	}
	for i := 1; i <= users; i++ {
		if got, want := requestsOf(run.Recorder, userToken(i)), []string{"POST tools/call", "POST tools/call"}; !slices.Equal(got, want) {
			t.Errorf("user %d: upstream requests %q, want %q", i, got, want)
		}
	}
	for _, r := range run.Recorder.Entries() {
		if v := r.Header.Get("Mcp-Protocol-Version"); r.RPCMethod == "tools/call" && v != legacyProtocol {
			t.Errorf("tools/call with Mcp-Protocol-Version %q, want %q", v, legacyProtocol)
		}
		if id := r.Header.Get("Mcp-Session-Id"); id != "" {
			t.Errorf("a stateless server was sent session %q", id)
		}
	}
	checkHeaders(t, run.Recorder)

	// The client that skipped the handshake serves the other methods too.
	raw, err := p.ListTools(ctx, srv, contracts.NewToken(userToken(1)))
	if err != nil || len(raw) < 3 {
		t.Fatalf("ListTools = %s, %v", raw, err)
	}
	if st := p.Stats(); st.Handshakes != 1 {
		t.Errorf("Stats = %+v after ListTools, want one handshake", st)
	}
}

// When a server taken for stateless refuses a call made without a
// handshake (400), the call is made again after one, and the next new user
// makes one too until a handshake shows the server stateless again.
func TestPool_StatelessServer_RefusalFallsBackToHandshake(t *testing.T) {
	t.Parallel()
	ctx := contractstest.Ctx(t)
	var strict atomic.Bool
	var mu sync.Mutex
	initialized := map[string]bool{} // Authorizations that sent initialize
	var seen []string                // user 1's requests, refused ones included
	wrap := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			auth := r.Header.Get("Authorization")
			method := demoserver.PeekRPCMethod(r)
			mu.Lock()
			if auth == userToken(1) {
				seen = append(seen, r.Method+" "+method)
			}
			switch method {
			case "initialize":
				initialized[auth] = true
			case "tools/call":
				if strict.Load() && !initialized[auth] {
					mu.Unlock()
					http.Error(w, "initialize first", http.StatusBadRequest)
					return
				}
			}
			mu.Unlock()
			next.ServeHTTP(w, r)
		})
	}
	run := workertest.StartDemo(t, demoserver.Options{Stateless: true, Wrap: wrap}, config.TransportHTTP)
	p := newPool(t, upstream.Options{}, nil)
	srv := httpServer("demo", config.TransportHTTP, run.URL)
	srv.ProtocolVersion = legacyProtocol

	wantWhoami(t, ctx, p, srv, userToken(0), userToken(0))
	strict.Store(true)
	wantWhoami(t, ctx, p, srv, userToken(1), userToken(1))
	want := []string{"POST tools/call", "POST initialize", "POST notifications/initialized", "POST tools/call"}
	mu.Lock()
	got := slices.Clone(seen)
	mu.Unlock()
	if !slices.Equal(got, want) {
		t.Errorf("upstream requests %q, want %q", got, want)
	}
	if st := p.Stats(); st.Handshakes != 2 || st.Clients != 2 {
		t.Errorf("Stats = %+v, want 2 clients, each with a handshake", st)
	}
}

// Idle streamable HTTP clients hold no goroutine of their own (the pooled
// connections are shared), and closing the pool leaves none behind.
func TestPool_IdleHTTPClientsHoldNoGoroutines(t *testing.T) {
	// Not parallel: it counts the process's goroutines.
	ctx := contractstest.Ctx(t)
	run := workertest.StartDemo(t, demoserver.Options{}, config.TransportHTTP)
	srv := httpServer("demo", config.TransportHTTP, run.URL)
	srv.ProtocolVersion = legacyProtocol
	p := upstream.New(upstream.Options{IdleTTL: time.Hour})
	defer p.Close()

	wantWhoami(t, ctx, p, srv, userToken(0), userToken(0))
	base := runtime.NumGoroutine()
	const users = 100
	for i := 1; i <= users; i++ {
		wantWhoami(t, ctx, p, srv, userToken(i), userToken(i))
	}
	if st := p.Stats(); st.Clients != users+1 {
		t.Fatalf("Stats = %+v, want %d clients", st, users+1)
	}
	// A few for the transport's connections, never one per client.
	contractstest.Eventually(t, "goroutines of idle clients to settle", func() bool {
		return runtime.NumGoroutine() < base+users/10
	})
	_ = p.Close()
	if st := p.Stats(); st.Clients != 0 {
		t.Errorf("Stats = %+v after Close, want no client", st)
	}
	contractstest.Eventually(t, "goroutines to return to the count before the users", func() bool {
		return runtime.NumGoroutine() <= base
	})
}
