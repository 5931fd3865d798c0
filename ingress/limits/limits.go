package limits

import (
	"math"
	"sync"
	"time"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
)

// Set is the fair-share state of every gateway key, and of every caller
// identity within a key, on this replica. Safe for concurrent use; each key
// has its own lock, so keys never contend, and identities are spread over
// sharded locks (identities.go). A nil *Set limits nothing.
//
// A key's limits are its own (auth.Principal.Limits: keys[].limits, or a
// managed key's record) over the defaults (ingress.key_limits), and so are
// its identity limits (auth.Principal.IdentityLimits: keys[].identity_limits,
// or a managed key's record, over ingress.identity_limits). Allow, Request
// and Stream are given both; ServerCall, asked by the dispatcher with the
// key's name only, uses those the key's last request was allowed with
// (every call's request passes Allow first).
// Each method takes the identity's share first
// and then the key's, so that a request one caller is refused costs the
// key nothing. An identity is a caller's (frontdoor.Caller.Owner), which
// tells keys apart too; "" (none known) is bounded by its key's limits
// only.
type Set struct {
	defaults config.KeyLimits
	replicas func() int
	now      func() time.Time

	keys sync.Map // key name -> *keyState

	ids identities
}

// New returns the limits of cfg (the defaults ingress.key_limits and
// identity_limits; cfg normalized). replicas reports the live
// ingress replicas (Presence.Replicas; nil means this one only).
func New(cfg *config.File, replicas func() int) *Set {
	s := &Set{defaults: cfg.Ingress.KeyLimits, replicas: replicas, now: time.Now}
	if s.replicas == nil {
		s.replicas = func() int { return 1 }
	}
	s.ids.init(cfg)
	return s
}

// keyState is one key's counters and token bucket on this replica.
type keyState struct {
	mu       sync.Mutex
	limits   config.KeyLimits // as of the key's last Allow
	idLimits config.KeyLimits // its identities', as of the key's last Allow
	known    bool             // limits and idLimits are set
	requests int
	streams  int
	servers  map[string]int
	bucket   bucket
}

func (s *Set) state(key string) *keyState {
	if st, ok := s.keys.Load(key); ok {
		return st.(*keyState)
	}
	st, _ := s.keys.LoadOrStore(key, &keyState{servers: map[string]int{}})
	return st.(*keyState)
}

// share is this replica's share of limit: limit divided by the live
// replicas, at least 1; 0 when limit is negative (no limit).
func (s *Set) share(limit int) int {
	if limit <= 0 {
		return 0
	}
	return max(1, limit/max(1, s.replicas()))
}

// bucket is a token bucket: a rate with bursts, divided among the replicas.
type bucket struct {
	tokens float64
	last   time.Time // of the last refill; zero: the bucket is full
}

// rates are l's rate and burst for one of n replicas; rate 0: no rate.
func rates(l config.KeyLimits, n int) (rate, burst float64) {
	if l.RequestsPerSecond <= 0 {
		return 0, 0
	}
	rate = l.RequestsPerSecond / float64(n)
	burst = math.Max(1, float64(l.Burst)/float64(n))
	if l.Burst <= 0 {
		burst = math.Max(1, rate)
	}
	return rate, burst
}

// take refills b at rate up to burst and takes one token, or reports how
// long until one is available.
func (b *bucket) take(rate, burst float64, now time.Time) (wait time.Duration, ok bool) {
	if b.last.IsZero() {
		b.tokens = burst
	} else {
		b.tokens = math.Min(burst, b.tokens+now.Sub(b.last).Seconds()*rate)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return 0, true
	}
	return time.Duration((1 - b.tokens) / rate * float64(time.Second)), false
}

// fullAt is when b, refilled at rate, holds burst tokens again: from then
// on it is the same as a bucket never used.
func (b *bucket) fullAt(rate, burst float64) time.Time {
	if b.last.IsZero() || rate <= 0 {
		return time.Time{}
	}
	return b.last.Add(time.Duration((burst - b.tokens) / rate * float64(time.Second)))
}

// Allow takes one request from the rate budgets of identity (of key) and of
// key (own and ownID are the key's own limits and identity limits), or
// refuses it with the time until the next one is available. Without rates
// it allows all.
func (s *Set) Allow(key string, own, ownID config.KeyLimits, identity string) *contracts.Error {
	if s == nil {
		return nil
	}
	l, idl := own.Or(s.defaults), s.ids.limits(ownID)
	st := s.state(key)
	st.mu.Lock()
	st.limits, st.idLimits, st.known = l, idl, true
	st.mu.Unlock()
	if e := s.ids.allow(s, idl, identity); e != nil {
		return e
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	rate, burst := rates(l, max(1, s.replicas()))
	if rate == 0 {
		return nil
	}
	if wait, ok := st.bucket.take(rate, burst, s.now()); !ok {
		return refusal(wait, "this key is over its request rate (%g per second)", l.RequestsPerSecond)
	}
	return nil
}

// Request takes one of identity's request slots within key and one of
// key's (own and ownID are the key's own limits and identity limits);
// release gives them back.
func (s *Set) Request(key string, own, ownID config.KeyLimits, identity string) (release func(), e *contracts.Error) {
	if s == nil {
		return func() {}, nil
	}
	releaseID, e := s.ids.take(s, s.ids.limits(ownID), identity, requestSlot, "")
	if e != nil {
		return nil, e
	}
	l := own.Or(s.defaults)
	releaseKey, e := s.take(key, s.share(l.MaxRequests), func(st *keyState) *int { return &st.requests },
		"this key has as many requests in flight as it may (%d)", l.MaxRequests)
	return joined(releaseID, releaseKey, e)
}

// Stream takes one of identity's long-lived request slots within key and
// one of key's (an MCP GET stream, a long poll; own and ownID are the key's
// own limits and identity limits); release gives them back.
func (s *Set) Stream(key string, own, ownID config.KeyLimits, identity string) (release func(), e *contracts.Error) {
	if s == nil {
		return func() {}, nil
	}
	releaseID, e := s.ids.take(s, s.ids.limits(ownID), identity, streamSlot, "")
	if e != nil {
		return nil, e
	}
	l := own.Or(s.defaults)
	releaseKey, e := s.take(key, s.share(l.MaxStreams), func(st *keyState) *int { return &st.streams },
		"this key holds as many streams and long polls as it may (%d)", l.MaxStreams)
	return joined(releaseID, releaseKey, e)
}

// ServerCall takes one of identity's call slots on server within key and
// one of key's, with the identity limits and limits of the key's last
// Allow (the defaults if none); release gives them back.
func (s *Set) ServerCall(key, identity, server string) (release func(), e *contracts.Error) {
	if s == nil {
		return func() {}, nil
	}
	st := s.state(key)
	st.mu.Lock()
	idl := s.ids.defaults
	if st.known {
		idl = st.idLimits
	}
	st.mu.Unlock()
	releaseID, e := s.ids.take(s, idl, identity, serverSlot, server)
	if e != nil {
		return nil, e
	}
	releaseKey, e := s.keyServerCall(key, server)
	return joined(releaseID, releaseKey, e)
}

// joined is the release of an identity's slot (nil: none taken) and of its
// key's, or the key's refusal e, which gives the identity's slot back.
func joined(releaseID, releaseKey func(), e *contracts.Error) (func(), *contracts.Error) {
	switch {
	case e != nil:
		if releaseID != nil {
			releaseID()
		}
		return nil, e
	case releaseID == nil:
		return releaseKey, nil
	}
	return func() { releaseKey(); releaseID() }, nil
}

// keyServerCall takes one of key's call slots on server.
func (s *Set) keyServerCall(key, server string) (release func(), e *contracts.Error) {
	st := s.state(key)
	st.mu.Lock()
	defer st.mu.Unlock()
	l := s.defaults
	if st.known {
		l = st.limits
	}
	share := s.share(l.MaxServerCalls)
	if share == 0 {
		return func() {}, nil
	}
	if st.servers[server] >= share {
		return nil, refusal(0, "this key has as many calls to server %q in flight as it may (%d)", server, l.MaxServerCalls)
	}
	st.servers[server]++
	return func() {
		st.mu.Lock()
		if st.servers[server]--; st.servers[server] <= 0 {
			delete(st.servers, server)
		}
		st.mu.Unlock()
	}, nil
}

// take takes a slot of the counter field of key's state, bounded by share
// (0: no bound).
func (s *Set) take(key string, share int, field func(*keyState) *int, format string, limit int) (func(), *contracts.Error) {
	if share == 0 {
		return func() {}, nil
	}
	st := s.state(key)
	st.mu.Lock()
	defer st.mu.Unlock()
	n := field(st)
	if *n >= share {
		return nil, refusal(0, format, limit)
	}
	*n++
	var once sync.Once
	return func() {
		once.Do(func() {
			st.mu.Lock()
			*field(st)--
			st.mu.Unlock()
		})
	}, nil
}

// refusal is the 429 rate_limited answer: retry after wait (at least a
// second, the resolution of Retry-After).
func refusal(wait time.Duration, format string, args ...any) *contracts.Error {
	e := contracts.NewError(contracts.CodeRateLimited, format, args...)
	e.RetryAfterSeconds = max(1, int(math.Ceil(wait.Seconds())))
	return e
}
