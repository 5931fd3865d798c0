package pool

import (
	"slices"
	"sync"
	"time"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
)

// Circuit breaker defaults (see BreakerConfig; worker.breaker in the
// configuration).
const (
	// DefaultBreakerFailures is how many calls to one server must fail
	// (upstream_error, or upstream_timeout within the server's own timeout)
	// with no success in between, within DefaultBreakerWindow, to open its
	// circuit.
	DefaultBreakerFailures = config.DefaultBreakerFailures
	// DefaultBreakerCooldown is how long an open circuit refuses calls
	// before it lets one probe call through.
	DefaultBreakerCooldown = config.DefaultBreakerCooldown
	// DefaultBreakerWindow is how far back failures count.
	DefaultBreakerWindow = config.DefaultBreakerWindow
	// DefaultBreakerMinCallers is how many distinct gateway keys must be
	// among those failures: one key alone cannot open a circuit that every
	// key shares.
	DefaultBreakerMinCallers = config.DefaultBreakerMinCallers
)

// BreakerConfig is a server's circuit breaker: it opens after Failures
// calls failed upstream with no success in between, all within Window, from
// at least MinCallers distinct gateway keys; it stays open for Cooldown.
// Failures 0 turns the breakers off.
type BreakerConfig struct {
	Failures   int
	Cooldown   time.Duration
	Window     time.Duration
	MinCallers int
}

// maxTrackedFailures bounds the failures a breaker remembers: the newest
// are kept, which are the ones that can open it.
const maxTrackedFailures = 256

// breakerState is where a circuit is.
type breakerState int

const (
	circuitClosed   breakerState = iota // calls go upstream
	circuitOpen                         // calls are refused at once until the cooldown ends
	circuitHalfOpen                     // one probe call goes upstream; others are refused
)

func (s breakerState) String() string {
	switch s {
	case circuitOpen:
		return "open"
	case circuitHalfOpen:
		return "half-open"
	default:
		return "closed"
	}
}

// outcome is what a reply says about the upstream's health.
type outcome int

const (
	// outcomeOther says nothing about the upstream: the request failed
	// before reaching it (seal_invalid, forbidden, overloaded, ...) or was
	// cancelled.
	outcomeOther outcome = iota
	// outcomeHealthy means the upstream answered: a result (a tool error
	// with isError included) or a refusal of the user's credential.
	outcomeHealthy
	// outcomeFailed means the upstream failed or did not answer in time.
	outcomeFailed
)

// breaker is one server's circuit breaker, local to this worker. After
// `failures` calls fail upstream (upstream_error, or upstream_timeout of a
// call that had at least the server's own timeout) with no success in
// between, within `window`, and from at least `minCallers` distinct gateway
// keys, it opens: calls are refused at once with upstream_error
// ("circuit open") for `cooldown`, so a dead or hanging server costs its
// callers nothing but a round trip and holds no call slot. Then it is
// half-open: exactly one call (the probe) goes upstream; its success closes
// the circuit, its failure opens it for another cooldown. Outcomes of calls
// that started before the circuit opened are ignored, as are outcomes that
// say nothing about the upstream. Safe for concurrent use.
type breaker struct {
	failures   int
	cooldown   time.Duration
	window     time.Duration
	minCallers int
	now        func() time.Time

	mu      sync.Mutex
	state   breakerState
	recent  []failure // failures since the last success while closed, oldest first
	until   time.Time // end of the cooldown while open
	probing bool      // a probe call is running (half-open)
	opened  uint64    // times the circuit opened
	refused uint64    // calls refused while open or half-open
}

// failure is one failed call: when, and the gateway key that made it.
type failure struct {
	at  time.Time
	key string
}

func newBreaker(c BreakerConfig, now func() time.Time) *breaker {
	return &breaker{failures: c.Failures, cooldown: c.Cooldown, window: c.Window, minCallers: max(c.MinCallers, 1), now: now}
}

// check reports whether a call is refused now (counting it if so), and
// for how much longer the cooldown runs. It changes no state, so that a
// request can be refused before it waits for a call slot; admit decides
// once it has one.
func (b *breaker) check() (refused bool, left time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	refused, left = b.refusingLocked()
	if refused {
		b.refused++
	}
	return refused, left
}

func (b *breaker) refusingLocked() (bool, time.Duration) {
	switch b.state {
	case circuitOpen:
		if left := b.until.Sub(b.now()); left > 0 {
			return true, left
		}
		return false, 0 // the cooldown is over: the next admit probes
	case circuitHalfOpen:
		return b.probing, 0
	default:
		return false, 0
	}
}

// admit decides whether a call may go upstream now (if not, left is what
// remains of the cooldown). probe is true when the call is the half-open
// probe; the caller must report every admitted call's outcome with done.
func (b *breaker) admit() (ok, probe bool, left time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if refuse, left := b.refusingLocked(); refuse {
		b.refused++
		return false, false, left
	}
	if b.state == circuitOpen {
		b.state = circuitHalfOpen
	}
	if b.state == circuitHalfOpen {
		b.probing = true
		return true, true, 0
	}
	return true, false, 0
}

// transition is a change of state that done reports, for the log.
type transition int

const (
	noChange transition = iota
	opened
	closed
)

// done records the outcome of an admitted call made with the gateway key
// key.
func (b *breaker) done(probe bool, o outcome, key string) transition {
	b.mu.Lock()
	defer b.mu.Unlock()
	if probe {
		b.probing = false
		switch o {
		case outcomeHealthy:
			b.state, b.recent = circuitClosed, b.recent[:0]
			return closed
		case outcomeFailed:
			b.openLocked()
			return opened
		}
		return noChange // inconclusive: the next call probes
	}
	if b.state != circuitClosed {
		return noChange // a call from before the circuit opened
	}
	switch o {
	case outcomeHealthy:
		b.recent = b.recent[:0]
	case outcomeFailed:
		if b.failedLocked(key) {
			b.openLocked()
			return opened
		}
	}
	return noChange
}

// failedLocked records a failure by key and reports whether the circuit
// must open: enough failures within the window, from enough keys.
func (b *breaker) failedLocked(key string) bool {
	now := b.now()
	if b.window > 0 {
		cut := 0
		for cut < len(b.recent) && now.Sub(b.recent[cut].at) >= b.window {
			cut++
		}
		b.recent = append(b.recent[:0], b.recent[cut:]...)
	}
	if len(b.recent) >= maxTrackedFailures {
		b.recent = append(b.recent[:0], b.recent[1:]...)
	}
	b.recent = append(b.recent, failure{at: now, key: key})
	if len(b.recent) < b.failures {
		return false
	}
	if b.minCallers <= 1 {
		return true
	}
	keys := make([]string, 0, b.minCallers)
	for _, f := range b.recent {
		if !slices.Contains(keys, f.key) {
			keys = append(keys, f.key)
			if len(keys) >= b.minCallers {
				return true
			}
		}
	}
	return false
}

func (b *breaker) openLocked() {
	b.state = circuitOpen
	b.until = b.now().Add(b.cooldown)
	b.recent = b.recent[:0]
	b.opened++
}

// refusal is the error a refused call is answered with: upstream_error
// (retryable), naming the circuit.
func (b *breaker) refusal(server string, left time.Duration) *contracts.Error {
	if left > 0 {
		return contracts.NewError(contracts.CodeUpstreamError,
			"circuit open: %d calls to the MCP server %q failed upstream; it is not called again for %s",
			b.failures, server, left.Round(100*time.Millisecond))
	}
	return contracts.NewError(contracts.CodeUpstreamError,
		"circuit open: %d calls to the MCP server %q failed upstream; a probe call is checking whether it is back", b.failures, server)
}

// breakerStats is a breaker's state for the service stats.
type breakerStats struct {
	State   string `json:"state"`
	Opened  uint64 `json:"opened"`
	Refused uint64 `json:"refused"`
}

func (b *breaker) stats() breakerStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	state := b.state
	if state == circuitOpen && !b.now().Before(b.until) {
		state = circuitHalfOpen
	}
	return breakerStats{State: state.String(), Opened: b.opened, Refused: b.refused}
}

// outcomeOf is what a request's error says about the upstream's health:
// none (a result, a tool error with isError included) and a refusal of the
// user's credential mean it answered; upstream_error that it failed, and so
// does upstream_timeout when the call had at least the server's own timeout
// (fullBudget) - a caller who asks for less than the server is configured
// to need learns nothing about the server's health; anything else (the
// request never reached it, was cancelled by its caller, or was refused as
// invalid - the caller's input, not the server's health) nothing.
func outcomeOf(e *contracts.Error, fullBudget bool) outcome {
	if e == nil {
		return outcomeHealthy
	}
	switch e.Code {
	case contracts.CodeUpstreamError:
		return outcomeFailed
	case contracts.CodeUpstreamTimeout:
		if fullBudget {
			return outcomeFailed
		}
		return outcomeOther
	case contracts.CodeUpstreamUnauthorized:
		return outcomeHealthy
	default:
		return outcomeOther
	}
}
