package limits

import (
	"hash/maphash"
	"sync"
	"time"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
)

// identityShards spreads the identities over this many locks, so that
// callers of one busy key do not all wait on one.
const identityShards = 64

// MaxIdleIdentities bounds the identities a replica remembers while they
// have nothing in flight (only a partly used rate budget), over all keys.
// Identities are as many as the credentials callers care to send, so the
// state kept for them must be bounded:
//
//   - an identity with a slot taken (a request, stream or call in flight) is
//     remembered until it gives its last one back: these are bounded by the
//     requests this replica serves at once;
//   - one with nothing in flight and a full rate budget (or no rate limit)
//     is the same as one never seen, and is forgotten at once;
//   - one with nothing in flight and a partly used rate budget is
//     remembered until its budget has refilled, at most MaxIdleIdentities
//     of them (least recently used dropped first). An identity dropped
//     early starts again with a full budget: under a flood of new
//     identities, a rate limit per identity may admit up to one more burst.
const MaxIdleIdentities = 1 << 15

// identities is the fair-share state of the caller identities within
// their keys on this replica. The limits of a key's callers come with each
// request (auth.Principal.IdentityLimits: keys[].identity_limits, or a
// managed key's record) over defaults, so configured and managed keys are
// bounded alike.
type identities struct {
	defaults config.KeyLimits // ingress.identity_limits
	maxIdle  int              // idle identities remembered per shard
	seed     maphash.Seed
	shards   [identityShards]identShard
}

// init reads the identity limits of cfg.
func (ids *identities) init(cfg *config.File) {
	ids.defaults = cfg.Ingress.IdentityLimits
	ids.maxIdle = max(1, MaxIdleIdentities/identityShards)
	ids.seed = maphash.MakeSeed()
	for i := range ids.shards {
		ids.shards[i].m = map[string]*identState{}
	}
}

// limits are the identity limits of the callers of a key whose own are own.
func (ids *identities) limits(own config.KeyLimits) config.KeyLimits {
	return own.Or(ids.defaults)
}

func (ids *identities) shard(identity string) *identShard {
	return &ids.shards[maphash.String(ids.seed, identity)%identityShards]
}

// slot is a kind of slot an identity takes.
type slot int

const (
	requestSlot slot = iota
	streamSlot
	serverSlot
)

// identState is one identity's counters and token bucket on this replica.
type identState struct {
	owner    string
	requests int
	streams  int
	servers  map[string]int
	bucket   bucket
	// rate and burst are the bucket's, as of its last use.
	rate, burst float64
	// In the shard's idle list (idle): its neighbours, and when its bucket
	// is full again.
	prev, next *identState
	idle       bool
	fullAt     time.Time
}

// busy says whether st holds a slot.
func (st *identState) busy() bool { return st.requests > 0 || st.streams > 0 || len(st.servers) > 0 }

func (st *identState) count(kind slot, server string) int {
	switch kind {
	case requestSlot:
		return st.requests
	case streamSlot:
		return st.streams
	}
	return st.servers[server]
}

func (st *identState) add(kind slot, server string, delta int) {
	switch kind {
	case requestSlot:
		st.requests += delta
	case streamSlot:
		st.streams += delta
	default:
		if st.servers == nil {
			st.servers = map[string]int{}
		}
		if st.servers[server] += delta; st.servers[server] <= 0 {
			delete(st.servers, server)
		}
	}
}

// identShard is some of the identities, behind one lock: every one it
// remembers, and the idle ones in a list, least recently used first.
type identShard struct {
	mu         sync.Mutex
	m          map[string]*identState
	head, tail *identState
	idle       int
}

// get is identity's state, remembered from now on (until settle), and out
// of the idle list while it is used.
func (sh *identShard) get(identity string) *identState {
	st := sh.m[identity]
	if st == nil {
		st = &identState{owner: identity}
		sh.m[identity] = st
		return st
	}
	if st.idle {
		sh.unlink(st)
	}
	return st
}

func (sh *identShard) unlink(st *identState) {
	if st.prev != nil {
		st.prev.next = st.next
	} else {
		sh.head = st.next
	}
	if st.next != nil {
		st.next.prev = st.prev
	} else {
		sh.tail = st.prev
	}
	st.prev, st.next, st.idle = nil, nil, false
	sh.idle--
}

// settle files st after a change: remembered while it holds a slot;
// forgotten if its bucket is full (there is nothing to remember); else
// last in the idle list, which keeps at most maxIdle identities and drops
// those whose bucket has refilled.
func (sh *identShard) settle(st *identState, maxIdle int, now time.Time) {
	if st.busy() {
		return
	}
	full := st.bucket.fullAt(st.rate, st.burst)
	if !full.After(now) {
		delete(sh.m, st.owner)
		return
	}
	st.fullAt, st.idle, st.prev = full, true, sh.tail
	if sh.tail != nil {
		sh.tail.next = st
	} else {
		sh.head = st
	}
	sh.tail = st
	sh.idle++
	for sh.head != nil && (sh.idle > maxIdle || !sh.head.fullAt.After(now)) {
		old := sh.head
		sh.unlink(old)
		delete(sh.m, old.owner)
	}
}

// allow takes one request from identity's rate budget, bounded by l (its
// key's identity limits).
func (ids *identities) allow(s *Set, l config.KeyLimits, identity string) *contracts.Error {
	if identity == "" {
		return nil
	}
	rate, burst := rates(l, max(1, s.replicas()))
	if rate == 0 {
		return nil
	}
	now := s.now()
	sh := ids.shard(identity)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st := sh.get(identity)
	st.rate, st.burst = rate, burst
	wait, ok := st.bucket.take(rate, burst, now)
	sh.settle(st, ids.maxIdle, now)
	if !ok {
		return refusal(wait, "this caller is over the request rate one caller of this key may use (%g per second)", l.RequestsPerSecond)
	}
	return nil
}

// take takes one of identity's slots of kind (on server, for serverSlot),
// bounded by l (its key's identity limits); release is nil when l does not
// bound kind.
func (ids *identities) take(s *Set, l config.KeyLimits, identity string, kind slot, server string) (release func(), e *contracts.Error) {
	if identity == "" {
		return nil, nil
	}
	limit := l.MaxRequests
	switch kind {
	case streamSlot:
		limit = l.MaxStreams
	case serverSlot:
		limit = l.MaxServerCalls
	}
	share := s.share(limit)
	if share == 0 {
		return nil, nil
	}
	sh := ids.shard(identity)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st := sh.get(identity)
	if st.count(kind, server) >= share {
		sh.settle(st, ids.maxIdle, s.now())
		switch kind {
		case requestSlot:
			return nil, refusal(0, "this caller has as many requests in flight as one caller of this key may (%d)", limit)
		case streamSlot:
			return nil, refusal(0, "this caller holds as many streams and long polls as one caller of this key may (%d)", limit)
		}
		return nil, refusal(0, "this caller has as many calls to server %q in flight as one caller of this key may (%d)", server, limit)
	}
	st.add(kind, server, 1)
	// A busy identity is never forgotten (settle), so st is its state
	// until this slot is given back.
	released := false
	return func() {
		sh.mu.Lock()
		defer sh.mu.Unlock()
		if released {
			return
		}
		released = true
		st.add(kind, server, -1)
		sh.settle(st, ids.maxIdle, s.now())
	}, nil
}

// remembered is the number of identities this replica keeps state for.
func (ids *identities) remembered() int {
	n := 0
	for i := range ids.shards {
		sh := &ids.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}
