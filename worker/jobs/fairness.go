package jobs

import (
	"sync"
	"time"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
)

// Fair shares between gateway keys. Jobs of one server wait in one
// JetStream consumer, in the order they were submitted; left alone, one
// key's thousand queued jobs would run before another key's next one. So a
// worker runs at most maxRunningPerKey jobs of one key on one server at
// once (jobs.max_running_per_key; default half the server's max_concurrency,
// at least 1): a job of a key already at its share is given back with a
// short delay (deferDelay) - not an attempt, its record stays queued - and
// the worker goes on to the next job in the stream, another key's. The key
// is read from the job's subject (toolbus.v1.jobs.<server>.<key tag>),
// before anything is decoded.

// deferDelay is how long a job over its key's share waits before it is
// delivered again.
const deferDelay = 500 * time.Millisecond

// maxRunningPerKey is jobs.max_running_per_key for server: 0 (the default)
// means half the server's max_concurrency, at least 1; a negative value no
// limit.
func maxRunningPerKey(f *config.File, server string) int {
	switch n := f.Jobs.MaxRunningPerKey; {
	case n < 0:
		return 0
	case n > 0:
		return n
	}
	if s := f.MCPServers[server]; s != nil && s.MaxConcurrency > 0 {
		return max(1, s.MaxConcurrency/2)
	}
	return max(1, config.DefaultServerConc/2)
}

// keyShares counts the jobs each key runs on this worker, per server.
type keyShares struct {
	limit func(server string) int // 0: no limit

	mu      sync.Mutex
	running map[shareKey]int
}

type shareKey struct{ server, tag string }

// take counts one more running job of the key of subject on server, and
// reports false (counting nothing) when the key is at its share. A subject
// that names no key tag is not limited.
func (k *keyShares) take(server, subject string) (release func(), ok bool) {
	limit := k.limit(server)
	sub, parsed := contracts.ParseSubject(subject)
	if limit <= 0 || !parsed || sub.KeyTag == "" {
		return func() {}, true
	}
	key := shareKey{server, sub.KeyTag}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.running[key] >= limit {
		return nil, false
	}
	k.running[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			k.mu.Lock()
			if k.running[key]--; k.running[key] <= 0 {
				delete(k.running, key)
			}
			k.mu.Unlock()
		})
	}, true
}
