package limits

import (
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
)

func newSet(t *testing.T, defaults config.KeyLimits, replicas *int) *Set {
	t.Helper()
	cfg := &config.File{}
	cfg.Ingress.KeyLimits = defaults
	return New(cfg, func() int { return *replicas })
}

// none: a key without limits of its own.
var none config.KeyLimits

func TestSet_RequestsShareAmongReplicas(t *testing.T) {
	replicas := 1
	s := newSet(t, config.KeyLimits{MaxRequests: 4}, &replicas)
	own := map[string]config.KeyLimits{"big": {MaxRequests: 6}}
	take := func(key string, n int) (releases []func(), refused *contracts.Error) {
		for range n {
			r, e := s.Request(key, own[key], none, "")
			if e != nil {
				return releases, e
			}
			releases = append(releases, r)
		}
		return releases, nil
	}
	got, e := take("a", 5)
	if len(got) != 4 || e == nil || e.Code != contracts.CodeRateLimited || !e.Retryable || e.RetryAfterSeconds < 1 {
		t.Fatalf("one replica: %d admitted, refusal %+v; want 4 then rate_limited", len(got), e)
	}
	// Keys do not share: another key has its own slots, a key with limits
	// of its own its own limit.
	if other, e := take("b", 4); e != nil || len(other) != 4 {
		t.Fatalf("another key: %d admitted, %v", len(other), e)
	}
	if big, e := take("big", 7); len(big) != 6 || e == nil {
		t.Fatalf("a key with its own limit: %d admitted, want 6", len(big))
	}
	got[0]()
	got[0]() // a second release changes nothing
	if more, e := take("a", 2); len(more) != 1 || e == nil {
		t.Fatalf("after one release: %d admitted, want 1", len(more))
	}

	// Two replicas: this one admits half.
	replicas = 2
	if c, e := take("c", 3); len(c) != 2 || e == nil {
		t.Fatalf("two replicas: %d admitted, want 2 (half of 4)", len(c))
	}
	// More replicas than the limit: still one each.
	replicas = 9
	if d, e := take("d", 2); len(d) != 1 || e == nil {
		t.Fatalf("nine replicas: %d admitted, want 1", len(d))
	}
}

func TestSet_StreamsAndServerCalls(t *testing.T) {
	replicas := 1
	s := newSet(t, config.KeyLimits{MaxStreams: 1, MaxServerCalls: 2, MaxRequests: -1}, &replicas)
	release, e := s.Stream("a", none, none, "")
	if e != nil {
		t.Fatal(e)
	}
	if _, e := s.Stream("a", none, none, ""); e == nil {
		t.Fatal("a second stream admitted")
	}
	release()
	if _, e := s.Stream("a", none, none, ""); e != nil {
		t.Fatalf("after the release: %v", e)
	}
	for range 2 {
		if _, e := s.ServerCall("a", "", "jira"); e != nil {
			t.Fatal(e)
		}
	}
	if _, e := s.ServerCall("a", "", "jira"); e == nil {
		t.Fatal("a third call to jira admitted")
	}
	if _, e := s.ServerCall("a", "", "github"); e != nil {
		t.Fatalf("another server: %v", e)
	}
	// No limit (negative): everything is admitted.
	for range 100 {
		if _, e := s.Request("a", none, none, ""); e != nil {
			t.Fatal(e)
		}
	}
	// A key's calls to a server follow the limits its requests came with.
	if e := s.Allow("own", config.KeyLimits{MaxServerCalls: 1}, none, ""); e != nil {
		t.Fatal(e)
	}
	if _, e := s.ServerCall("own", "", "jira"); e != nil {
		t.Fatal(e)
	}
	if _, e := s.ServerCall("own", "", "jira"); e == nil {
		t.Fatal("a key with its own max_server_calls 1 had 2 calls to jira")
	}
}

func TestSet_Rate(t *testing.T) {
	replicas := 1
	s := newSet(t, config.KeyLimits{RequestsPerSecond: 2, Burst: 3}, &replicas)
	now := time.Unix(1_800_000_000, 0)
	s.now = func() time.Time { return now }
	for i := range 3 {
		if e := s.Allow("a", none, none, ""); e != nil {
			t.Fatalf("request %d of the burst: %v", i+1, e)
		}
	}
	e := s.Allow("a", none, none, "")
	if e == nil || e.Code != contracts.CodeRateLimited || e.RetryAfterSeconds != 1 {
		t.Fatalf("over the burst: %+v, want rate_limited, retry after 1s", e)
	}
	if s.Allow("b", none, none, "") != nil {
		t.Fatal("another key was limited")
	}
	now = now.Add(500 * time.Millisecond) // one token at 2/s
	if s.Allow("a", none, none, "") != nil {
		t.Fatal("refused after a token was earned")
	}
	if s.Allow("a", none, none, "") == nil {
		t.Fatal("admitted without a token")
	}
	// Two replicas: each has half the rate and burst.
	replicas = 2
	if s.Allow("c", none, none, "") != nil {
		t.Fatal("first request on a replica with a half share")
	}
	if s.Allow("c", none, none, "") == nil {
		t.Fatal("a half share of a burst of 3 admitted 2")
	}
}

func TestSet_Nil(t *testing.T) {
	var s *Set
	if s.Allow("a", none, none, "") != nil {
		t.Fatal("nil set limited the rate")
	}
	for _, take := range []func() (func(), *contracts.Error){
		func() (func(), *contracts.Error) { return s.Request("a", none, none, "") },
		func() (func(), *contracts.Error) { return s.Stream("a", none, none, "") },
		func() (func(), *contracts.Error) { return s.ServerCall("a", "", "x") },
	} {
		release, e := take()
		if e != nil {
			t.Fatal(e)
		}
		release()
	}
}

// Replicas on one NATS count each other, and forget one that stopped.
func TestPresence_CountsReplicas(t *testing.T) {
	n := contractstest.StartNATS(t)
	const interval = 50 * time.Millisecond
	a, err := StartPresence(n.Connect(t), interval, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	b, err := StartPresence(n.Connect(t), interval, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	contractstest.Eventually(t, "both replicas to count 2", func() bool { return a.Replicas() == 2 && b.Replicas() == 2 })
	b.Close()
	b.Close() // safe twice
	contractstest.Eventually(t, "the stopped replica to be forgotten", func() bool { return a.Replicas() == 1 })
	var none *Presence
	if none.Replicas() != 1 {
		t.Fatal("a nil Presence counts other than 1")
	}
}
