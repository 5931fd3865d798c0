package limits

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
)

// newIdentitySet is a Set with key and identity defaults.
func newIdentitySet(t *testing.T, keyDefaults, identityDefaults config.KeyLimits, replicas *int) *Set {
	t.Helper()
	cfg := &config.File{}
	cfg.Ingress.KeyLimits, cfg.Ingress.IdentityLimits = keyDefaults, identityDefaults
	return New(cfg, func() int { return *replicas })
}

// callerRefusal checks that e is the 429 of a caller's own share: it says
// so, and names neither the identity nor the key.
func callerRefusal(t *testing.T, what string, e *contracts.Error, identity string) {
	t.Helper()
	if e == nil {
		t.Fatalf("%s: admitted, want rate_limited", what)
	}
	if e.Code != contracts.CodeRateLimited || !e.Retryable || e.RetryAfterSeconds < 1 ||
		!strings.Contains(e.Message, "this caller") || strings.Contains(e.Message, identity) {
		t.Fatalf("%s: %+v, want rate_limited naming the caller's own share", what, e)
	}
}

func TestSet_IdentitySharesWithinAKey(t *testing.T) {
	replicas := 1
	s := newIdentitySet(t, config.KeyLimits{MaxRequests: 3}, config.KeyLimits{MaxRequests: 2}, &replicas)
	const alice, bob, carol = "k:a:alice-identity", "k:a:bob-identity", "k:a:carol-identity"
	r1, e := s.Request("a", none, none, alice)
	if e != nil {
		t.Fatal(e)
	}
	if _, e := s.Request("a", none, none, alice); e != nil {
		t.Fatal(e)
	}
	_, e = s.Request("a", none, none, alice)
	callerRefusal(t, "alice's third request", e, alice)
	// Bob, of the same key, has his own share; the key's limit (3) still
	// holds for both together, with the key's own message.
	rb, e := s.Request("a", none, none, bob)
	if e != nil {
		t.Fatalf("bob while alice is at her share: %v", e)
	}
	_, e = s.Request("a", none, none, carol)
	if e == nil || strings.Contains(e.Message, "this caller") || !strings.Contains(e.Message, "this key") {
		t.Fatalf("carol with the key full: %+v, want the key's refusal", e)
	}
	// A refusal by the key gave carol's own slot back: once bob is done,
	// carol has both of hers.
	rb()
	rb() // a second release changes nothing
	if _, e := s.Request("a", none, none, carol); e != nil {
		t.Fatalf("carol after bob's release: %v", e)
	}
	r1()
	if _, e := s.Request("a", none, none, alice); e != nil {
		t.Fatalf("alice after one of hers was released: %v", e)
	}
	if _, e := s.Request("a", none, none, carol); e == nil || strings.Contains(e.Message, "this caller") {
		t.Fatalf("carol with the key (3) full again: %+v, want the key's refusal", e)
	}
	// No identity (""): bounded by the key's limit only.
	s2 := newIdentitySet(t, config.KeyLimits{MaxRequests: -1}, config.KeyLimits{MaxRequests: 1}, &replicas)
	for range 10 {
		if _, e := s2.Request("a", none, none, ""); e != nil {
			t.Fatalf("no identity: %v", e)
		}
	}
	// A key's own identity limits (keys[].identity_limits, or a managed
	// key's record) replace the default's; those it leaves unset keep it.
	big := config.KeyLimits{MaxRequests: 5}
	for i := range 5 {
		if _, e := s.Request("big", config.KeyLimits{MaxRequests: -1}, big, "k:big:alice"); e != nil {
			t.Fatalf("request %d of a key whose callers may have 5: %v", i+1, e)
		}
	}
	_, e = s.Request("big", config.KeyLimits{MaxRequests: -1}, big, "k:big:alice")
	callerRefusal(t, "the sixth", e, "k:big:alice")
	// Two replicas: each admits half an identity's share.
	replicas = 2
	if _, e := s2.Request("b", none, none, "k:b:dave"); e != nil {
		t.Fatal(e)
	}
	_, e = s2.Request("b", none, none, "k:b:dave")
	callerRefusal(t, "over half a share of 1 (at least 1)", e, "k:b:dave")
}

func TestSet_IdentityStreamsAndServerCalls(t *testing.T) {
	replicas := 1
	s := newIdentitySet(t, config.KeyLimits{MaxRequests: -1}, config.KeyLimits{MaxStreams: 1, MaxServerCalls: 1}, &replicas)
	const alice, bob = "k:a:alice", "k:a:bob"
	if _, e := s.Stream("a", none, none, alice); e != nil {
		t.Fatal(e)
	}
	_, e := s.Stream("a", none, none, alice)
	callerRefusal(t, "alice's second stream", e, alice)
	if _, e := s.Stream("a", none, none, bob); e != nil {
		t.Fatalf("bob's stream: %v", e)
	}
	release, e := s.ServerCall("a", alice, "jira")
	if e != nil {
		t.Fatal(e)
	}
	_, e = s.ServerCall("a", alice, "jira")
	callerRefusal(t, "alice's second call to jira", e, alice)
	if !strings.Contains(e.Message, `"jira"`) {
		t.Fatalf("the refusal names no server: %s", e.Message)
	}
	if _, e := s.ServerCall("a", alice, "github"); e != nil {
		t.Fatalf("alice's call to another server: %v", e)
	}
	if _, e := s.ServerCall("a", bob, "jira"); e != nil {
		t.Fatalf("bob's call to jira: %v", e)
	}
	release()
	if _, e := s.ServerCall("a", alice, "jira"); e != nil {
		t.Fatalf("after the release: %v", e)
	}
	// With no identity default at all, a key's own identity limits still
	// bound its callers: ServerCall, asked by name, uses those of the key's
	// last Allow.
	s = newIdentitySet(t, config.KeyLimits{MaxRequests: -1}, config.KeyLimits{}, &replicas)
	own := config.KeyLimits{MaxServerCalls: 1, MaxStreams: 1}
	if _, e := s.ServerCall("m", alice, "jira"); e != nil {
		t.Fatalf("before the key's first Allow (defaults: none): %v", e)
	}
	if e := s.Allow("m", none, own, alice); e != nil {
		t.Fatal(e)
	}
	if _, e := s.ServerCall("m", alice, "jira"); e != nil {
		t.Fatalf("a call under the key's own identity limits: %v", e)
	}
	_, e = s.ServerCall("m", alice, "jira")
	callerRefusal(t, "a second call to jira under the key's own identity limits", e, alice)
	if _, e := s.ServerCall("m", bob, "jira"); e != nil {
		t.Fatalf("bob's call under the key's own identity limits: %v", e)
	}
	if _, e := s.Stream("m", none, own, alice); e != nil {
		t.Fatal(e)
	}
	_, e = s.Stream("m", none, own, alice)
	callerRefusal(t, "a second stream under the key's own identity limits", e, alice)
	if _, e := s.Stream("n", none, none, "k:n:alice"); e != nil {
		t.Fatalf("another key, of no identity limits: %v", e)
	}
}

func TestSet_IdentityRate(t *testing.T) {
	replicas := 1
	s := newIdentitySet(t, config.KeyLimits{RequestsPerSecond: 1, Burst: 2}, config.KeyLimits{RequestsPerSecond: 1, Burst: 1}, &replicas)
	now := time.Unix(1_800_000_000, 0)
	s.now = func() time.Time { return now }
	const alice, bob = "k:a:alice", "k:a:bob"
	if e := s.Allow("a", none, none, alice); e != nil {
		t.Fatal(e)
	}
	for range 5 {
		callerRefusal(t, "alice over her rate", s.Allow("a", none, none, alice), alice)
	}
	// Alice's refused requests took nothing from the key's budget (burst 2):
	// bob still has its second token.
	if e := s.Allow("a", none, none, bob); e != nil {
		t.Fatalf("bob after alice's refusals: %v", e)
	}
	if e := s.Allow("a", none, none, "k:a:carol"); e == nil || strings.Contains(e.Message, "this caller") {
		t.Fatalf("carol with the key's budget spent: %+v, want the key's refusal", e)
	}
	now = now.Add(time.Second)
	if e := s.Allow("a", none, none, alice); e != nil {
		t.Fatalf("alice after a second: %v", e)
	}
}

// Identities are as many as callers care to invent; the state kept for them
// is bounded: none for one with nothing in flight and nothing left to
// refill, at most MaxIdleIdentities (here maxIdle per shard) with a partly
// used rate budget, and one with a slot taken is never forgotten.
func TestSet_IdentityStateIsBounded(t *testing.T) {
	replicas := 1
	// Slots only: nothing is remembered once released.
	s := newIdentitySet(t, config.KeyLimits{MaxRequests: -1}, config.KeyLimits{MaxRequests: 1}, &replicas)
	for i := range 1000 {
		release, e := s.Request("a", none, none, fmt.Sprintf("k:a:%d", i))
		if e != nil {
			t.Fatal(e)
		}
		release()
	}
	if n := s.ids.remembered(); n != 0 {
		t.Fatalf("%d identities remembered with nothing in flight and no rate, want 0", n)
	}

	// A rate: idle identities are bounded, and forgotten once refilled.
	s = newIdentitySet(t, config.KeyLimits{MaxRequests: -1}, config.KeyLimits{MaxRequests: 1, RequestsPerSecond: 1, Burst: 1}, &replicas)
	now := time.Unix(1_800_000_000, 0)
	s.now = func() time.Time { return now }
	s.ids.maxIdle = 4
	bound := 4 * identityShards
	const busy = "k:a:holder"
	hold, e := s.Request("a", none, none, busy)
	if e != nil {
		t.Fatal(e)
	}
	for i := range 20 * bound {
		if e := s.Allow("a", none, none, fmt.Sprintf("k:a:%d", i)); e != nil {
			t.Fatal(e)
		}
	}
	if n := s.ids.remembered(); n > bound+1 || n < bound/2 {
		t.Fatalf("%d identities remembered after %d new ones, want at most %d idle and the busy one", n, 20*bound, bound)
	}
	// The busy identity was not forgotten in the flood: its slot still counts.
	_, e = s.Request("a", none, none, busy)
	callerRefusal(t, "the busy identity's second request after the flood", e, busy)
	hold()
	// Once their buckets have refilled, the idle identities are dropped as
	// new ones arrive.
	now = now.Add(2 * time.Second)
	for i := range 20 * bound {
		if e := s.Allow("a", none, none, fmt.Sprintf("k:a:new-%d", i)); e != nil {
			t.Fatal(e)
		}
	}
	if n := s.ids.remembered(); n > bound {
		t.Fatalf("%d identities remembered, want at most %d", n, bound)
	}
	// Identities whose budget has refilled are forgotten as soon as their
	// shard files another: ten idle identities of one shard, then one more
	// after their refill time, leave one.
	s.ids.maxIdle = 100
	now = now.Add(time.Hour)
	var same []string
	for i := 0; len(same) < 11; i++ {
		if id := fmt.Sprintf("k:a:shard0-%d", i); s.ids.shard(id) == &s.ids.shards[0] {
			same = append(same, id)
		}
	}
	for _, id := range same[:10] {
		if e := s.Allow("a", none, none, id); e != nil {
			t.Fatal(e)
		}
	}
	if n := len(s.ids.shards[0].m); n != 10 {
		t.Fatalf("shard 0 remembers %d identities, want the 10 with a partly used budget", n)
	}
	now = now.Add(time.Second)
	if e := s.Allow("a", none, none, same[10]); e != nil {
		t.Fatal(e)
	}
	if n := len(s.ids.shards[0].m); n != 1 {
		t.Fatalf("shard 0 remembers %d identities after the others' budgets refilled, want 1", n)
	}
}
