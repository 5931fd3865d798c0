package limits

import (
	"math"
	"sync"
	"time"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
)

// Set is the fair-share state of every gateway key on this replica. Safe
// for concurrent use; each key has its own lock, so keys never contend. A
// nil *Set limits nothing.
//
// A key's limits are its own (auth.Principal.Limits: keys[].limits, or a
// managed key's record) over the defaults (ingress.key_limits). Allow,
// Request and Stream are given them; ServerCall, asked by the dispatcher
// with the key's name only, uses those the key's last request was allowed
// with (every call's request passes Allow first).
type Set struct {
	defaults config.KeyLimits
	replicas func() int
	now      func() time.Time

	keys sync.Map // key name -> *keyState
}

// New returns the limits of cfg (ingress.key_limits; cfg normalized).
// replicas reports the live ingress replicas (Presence.Replicas; nil means
// this one only).
func New(cfg *config.File, replicas func() int) *Set {
	s := &Set{defaults: cfg.Ingress.KeyLimits, replicas: replicas, now: time.Now}
	if s.replicas == nil {
		s.replicas = func() int { return 1 }
	}
	return s
}

// keyState is one key's counters and token bucket on this replica.
type keyState struct {
	mu       sync.Mutex
	limits   config.KeyLimits // as of the key's last Allow
	known    bool             // limits is set
	requests int
	streams  int
	servers  map[string]int
	tokens   float64
	last     time.Time // of the last refill; zero: the bucket is full
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

// Allow takes one request from key's rate budget (own are the key's own
// limits), or refuses it with the time until the next one is available.
// Without a rate it allows all.
func (s *Set) Allow(key string, own config.KeyLimits) *contracts.Error {
	if s == nil {
		return nil
	}
	l := own.Or(s.defaults)
	st := s.state(key)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.limits, st.known = l, true
	if l.RequestsPerSecond <= 0 {
		return nil
	}
	n := float64(max(1, s.replicas()))
	rate := l.RequestsPerSecond / n
	burst := math.Max(1, float64(l.Burst)/n)
	if l.Burst <= 0 {
		burst = math.Max(1, rate)
	}
	now := s.now()
	if st.last.IsZero() {
		st.tokens = burst
	} else {
		st.tokens = math.Min(burst, st.tokens+now.Sub(st.last).Seconds()*rate)
	}
	st.last = now
	if st.tokens >= 1 {
		st.tokens--
		return nil
	}
	wait := time.Duration((1 - st.tokens) / rate * float64(time.Second))
	return refusal(wait, "this key is over its request rate (%g per second)", l.RequestsPerSecond)
}

// Request takes one of key's request slots (own are the key's own
// limits); release gives it back.
func (s *Set) Request(key string, own config.KeyLimits) (release func(), e *contracts.Error) {
	if s == nil {
		return func() {}, nil
	}
	l := own.Or(s.defaults)
	return s.take(key, s.share(l.MaxRequests), func(st *keyState) *int { return &st.requests },
		"this key has as many requests in flight as it may (%d)", l.MaxRequests)
}

// Stream takes one of key's long-lived request slots (an MCP GET stream,
// a long poll; own are the key's own limits); release gives it back.
func (s *Set) Stream(key string, own config.KeyLimits) (release func(), e *contracts.Error) {
	if s == nil {
		return func() {}, nil
	}
	l := own.Or(s.defaults)
	return s.take(key, s.share(l.MaxStreams), func(st *keyState) *int { return &st.streams },
		"this key holds as many streams and long polls as it may (%d)", l.MaxStreams)
}

// ServerCall takes one of key's call slots on server, with the limits of
// the key's last Allow (the defaults if none); release gives it back.
func (s *Set) ServerCall(key, server string) (release func(), e *contracts.Error) {
	if s == nil {
		return func() {}, nil
	}
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
