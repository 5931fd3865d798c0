package pool

import (
	"sync"
	"time"

	"github.com/toolbus/toolbus/contracts"
)

// Circuit breaker defaults (see WithBreaker).
const (
	// DefaultBreakerFailures is how many calls to one server must fail in a
	// row (upstream_error or upstream_timeout) to open its circuit.
	DefaultBreakerFailures = 5
	// DefaultBreakerCooldown is how long an open circuit refuses calls
	// before it lets one probe call through.
	DefaultBreakerCooldown = 10 * time.Second
)

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
// `failures` calls in a row fail upstream (upstream_error or
// upstream_timeout) it opens: calls are refused at once with upstream_error
// ("circuit open") for `cooldown`, so a dead or hanging server costs its
// callers nothing but a round trip and holds no call slot. Then it is
// half-open: exactly one call (the probe) goes upstream; its success closes
// the circuit, its failure opens it for another cooldown. Outcomes of calls
// that started before the circuit opened are ignored, as are outcomes that
// say nothing about the upstream. Safe for concurrent use.
type breaker struct {
	failures int
	cooldown time.Duration
	now      func() time.Time

	mu      sync.Mutex
	state   breakerState
	streak  int       // consecutive failures while closed
	until   time.Time // end of the cooldown while open
	probing bool      // a probe call is running (half-open)
	opened  uint64    // times the circuit opened
	refused uint64    // calls refused while open or half-open
}

func newBreaker(failures int, cooldown time.Duration, now func() time.Time) *breaker {
	return &breaker{failures: failures, cooldown: cooldown, now: now}
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

// done records the outcome of an admitted call.
func (b *breaker) done(probe bool, o outcome) transition {
	b.mu.Lock()
	defer b.mu.Unlock()
	if probe {
		b.probing = false
		switch o {
		case outcomeHealthy:
			b.state, b.streak = circuitClosed, 0
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
		b.streak = 0
	case outcomeFailed:
		b.streak++
		if b.streak >= b.failures {
			b.openLocked()
			return opened
		}
	}
	return noChange
}

func (b *breaker) openLocked() {
	b.state = circuitOpen
	b.until = b.now().Add(b.cooldown)
	b.streak = 0
	b.opened++
}

// refusal is the error a refused call is answered with: upstream_error
// (retryable), naming the circuit.
func (b *breaker) refusal(server string, left time.Duration) *contracts.Error {
	if left > 0 {
		return contracts.NewError(contracts.CodeUpstreamError,
			"circuit open: calls to the MCP server %q failed %d times in a row; it is not called again for %s",
			server, b.failures, left.Round(100*time.Millisecond))
	}
	return contracts.NewError(contracts.CodeUpstreamError,
		"circuit open: the MCP server %q failed %d calls in a row; a probe call is checking whether it is back", server, b.failures)
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
// user's credential mean it answered; upstream_error and upstream_timeout
// that it failed; anything else (the request never reached it, or was
// cancelled) nothing.
func outcomeOf(e *contracts.Error) outcome {
	if e == nil {
		return outcomeHealthy
	}
	switch e.Code {
	case contracts.CodeUpstreamError, contracts.CodeUpstreamTimeout:
		return outcomeFailed
	case contracts.CodeUpstreamUnauthorized:
		return outcomeHealthy
	default:
		return outcomeOther
	}
}
