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
// handshake (400), first or not, the call is made again after one, and
// every new client makes one from then on.
func TestPool_StatelessServer_RefusalFallsBackToHandshake(t *testing.T) {
	t.Parallel()
	ctx := contractstest.Ctx(t)
	var strict atomic.Bool
	var mu sync.Mutex
	initialized := map[string]bool{} // Authorizations that sent initialize
	seen := map[string][]string{}    // by Authorization, refused requests included
	wrap := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			auth := r.Header.Get("Authorization")
			method := demoserver.PeekRPCMethod(r)
			mu.Lock()
			seen[auth] = append(seen[auth], r.Method+" "+method)
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
	wantWhoami(t, ctx, p, srv, userToken(2), userToken(2)) // no handshake
	strict.Store(true)
	wantWhoami(t, ctx, p, srv, userToken(1), userToken(1)) // a first call refused
	wantWhoami(t, ctx, p, srv, userToken(2), userToken(2)) // a later call refused
	handshake := []string{"POST initialize", "POST notifications/initialized", "POST tools/call"}
	for user, want := range map[int][]string{
		1: append([]string{"POST tools/call"}, handshake...),
		2: append([]string{"POST tools/call", "POST tools/call"}, handshake...),
	} {
		mu.Lock()
		got := slices.Clone(seen[userToken(user)])
		mu.Unlock()
		if !slices.Equal(got, want) {
			t.Errorf("user %d: upstream requests %q, want %q", user, got, want)
		}
	}
	// After a refusal, a new user makes a handshake at once.
	wantWhoami(t, ctx, p, srv, userToken(3), userToken(3))
	mu.Lock()
	got := slices.Clone(seen[userToken(3)])
	mu.Unlock()
	if !slices.Equal(got, handshake) {
		t.Errorf("user 3: upstream requests %q, want %q", got, handshake)
	}
	if st := p.Stats(); st.Handshakes != 4 || st.Clients != 4 {
		t.Errorf("Stats = %+v, want 4 clients, each with a handshake", st)
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

// A first call without a handshake that fails otherwise (here: an unknown
// tool) makes the next new client make one, which shows the server
// stateless again for the one after.
func TestPool_StatelessServer_FailedFirstCallRelearns(t *testing.T) {
	t.Parallel()
	ctx := contractstest.Ctx(t)
	run := workertest.StartDemo(t, demoserver.Options{Stateless: true}, config.TransportHTTP)
	p := newPool(t, upstream.Options{}, nil)
	srv := httpServer("demo", config.TransportHTTP, run.URL)
	srv.ProtocolVersion = legacyProtocol

	wantWhoami(t, ctx, p, srv, userToken(0), userToken(0))
	if _, err := p.CallTool(ctx, srv, contracts.NewToken(userToken(1)), "no-such-tool", nil); err == nil {
		t.Fatal("calling an unknown tool succeeded")
	}
	if st := p.Stats(); st.Handshakes != 1 {
		t.Fatalf("Stats = %+v, want one handshake", st)
	}
	wantWhoami(t, ctx, p, srv, userToken(2), userToken(2))
	if st := p.Stats(); st.Handshakes != 2 {
		t.Errorf("Stats = %+v after the failure, want a second handshake", st)
	}
	wantWhoami(t, ctx, p, srv, userToken(3), userToken(3))
	if st := p.Stats(); st.Handshakes != 2 {
		t.Errorf("Stats = %+v, want the server known stateless again", st)
	}
	for user, want := range map[int][]string{
		1: {"POST tools/call"},
		2: {"POST initialize", "POST notifications/initialized", "POST tools/call"},
		3: {"POST tools/call"},
	} {
		if got := requestsOf(run.Recorder, userToken(user)); !slices.Equal(got, want) {
			t.Errorf("user %d: upstream requests %q, want %q", user, got, want)
		}
	}
}

// On the 2026-07-28 revision a client's handshake is server/discover, which
// says nothing of the user and opens no session: after one client's, a new
// user's first call is that call alone, with the user's credential set and
// the revision's headers.
func TestPool_ModernServer_NewUserReusesDiscover(t *testing.T) {
	t.Parallel()
	ctx := contractstest.Ctx(t)
	run := workertest.StartDemo(t, demoserver.Options{}, config.TransportHTTP)
	p := newPool(t, upstream.Options{}, nil)
	srv := httpServer("demo", config.TransportHTTP, run.URL)
	srv.ProtocolVersion = config.ProtocolLatest

	wantWhoami(t, ctx, p, srv, userToken(0), userToken(0))
	if got, want := requestsOf(run.Recorder, userToken(0)), []string{"POST server/discover", "POST tools/call"}; !slices.Equal(got, want) {
		t.Fatalf("first user: upstream requests %q, want %q", got, want)
	}
	const users = 6
	var wg sync.WaitGroup
	for i := 1; i <= users; i++ {
		wg.Go(func() { wantWhoami(t, ctx, p, srv, userToken(i), userToken(i)) })
	}
	wg.Wait()
	for i := 1; i <= users; i++ {
		if got, want := requestsOf(run.Recorder, userToken(i)), []string{"POST tools/call"}; !slices.Equal(got, want) {
			t.Errorf("user %d: upstream requests %q, want %q", i, got, want)
		}
	}
	if st := p.Stats(); st.Handshakes != 1 || st.Connects != users+1 {
		t.Errorf("Stats = %+v, want %d clients and one handshake", st, users+1)
	}
	versions := map[string]bool{}
	for _, v := range run.Recorder.Values("Mcp-Protocol-Version") {
		versions[v] = true
	}
	if len(versions) != 1 || versions[""] {
		t.Errorf("Mcp-Protocol-Version values %v, want one revision on every request", versions)
	}
	checkHeaders(t, run.Recorder)
}
