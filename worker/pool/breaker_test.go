package pool

import (
	"testing"
	"time"

	"github.com/toolbus/toolbus/contracts"
)

type fakeClock struct{ t time.Time }

func newFakeClock() *fakeClock      { return &fakeClock{t: time.Unix(1_800_000_000, 0)} }
func (c *fakeClock) now() time.Time { return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.t = c.t.Add(d)
}

func (b *breaker) current() breakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}

// call admits a call by the key "a" and reports its outcome.
func call(b *breaker, o outcome) (ok, probe bool) { return callAs(b, o, "a") }

// callAs admits a call by key and reports its outcome.
func callAs(b *breaker, o outcome, key string) (ok, probe bool) {
	ok, probe, _ = b.admit()
	if ok {
		b.done(probe, o, key)
	}
	return ok, probe
}

func TestBreaker_OpensAfterConsecutiveFailures(t *testing.T) {
	clock := newFakeClock()
	b := newBreaker(BreakerConfig{Failures: 3, Cooldown: 10 * time.Second, MinCallers: 1}, clock.now)

	// A success in between resets the streak.
	for _, o := range []outcome{outcomeFailed, outcomeFailed, outcomeHealthy, outcomeFailed, outcomeFailed, outcomeOther} {
		if ok, _ := call(b, o); !ok {
			t.Fatal("refused while closed")
		}
	}
	if b.current() != circuitClosed {
		t.Fatal("opened without 3 failures in a row")
	}
	if ok, _ := call(b, outcomeFailed); !ok || b.current() != circuitOpen {
		t.Fatalf("third failure in a row: state %s", b.current())
	}
	if refused, left := b.check(); !refused || left != 10*time.Second {
		t.Fatalf("check = %v %s, want refused for 10s", refused, left)
	}
	clock.add(4 * time.Second)
	if ok, _, left := b.admit(); ok || left != 6*time.Second {
		t.Fatalf("admit during the cooldown: %v, %s left", ok, left)
	}
	if got := b.stats(); got.State != "open" || got.Opened != 1 || got.Refused != 2 {
		t.Fatalf("stats %+v", got)
	}
}

func TestBreaker_HalfOpenProbe(t *testing.T) {
	clock := newFakeClock()
	b := newBreaker(BreakerConfig{Failures: 1, Cooldown: time.Second, MinCallers: 1}, clock.now)
	call(b, outcomeFailed)
	clock.add(time.Second)

	// The cooldown is over: one probe goes through, others are refused
	// while it runs.
	if refused, _ := b.check(); refused {
		t.Fatal("refused after the cooldown")
	}
	ok, probe, _ := b.admit()
	if !ok || !probe {
		t.Fatalf("admit after the cooldown = %v %v, want the probe", ok, probe)
	}
	if ok, _, _ := b.admit(); ok {
		t.Fatal("a second call went through while the probe runs")
	}
	// A late outcome of a call from before the circuit opened changes nothing.
	b.done(false, outcomeHealthy, "a")
	if b.current() != circuitHalfOpen {
		t.Fatalf("state %s", b.current())
	}
	// The probe fails: open for another cooldown.
	if tr := b.done(true, outcomeFailed, "a"); tr != opened || b.current() != circuitOpen {
		t.Fatalf("failed probe: %v %s", tr, b.current())
	}
	clock.add(time.Second)
	// An inconclusive probe (the request never reached the server) lets the
	// next call probe.
	_, probe, _ = b.admit()
	b.done(probe, outcomeOther, "a")
	ok, probe, _ = b.admit()
	if !ok || !probe {
		t.Fatal("no new probe after an inconclusive one")
	}
	if tr := b.done(true, outcomeHealthy, "a"); tr != closed || b.current() != circuitClosed {
		t.Fatalf("healthy probe: %v %s", tr, b.current())
	}
	if ok, probe := call(b, outcomeHealthy); !ok || probe {
		t.Fatal("closed circuit refused a call")
	}
}

// One key's failures, however many, do not open a circuit every key shares:
// it takes failures from MinCallers distinct keys.
func TestBreaker_NeedsDistinctCallers(t *testing.T) {
	clock := newFakeClock()
	b := newBreaker(BreakerConfig{Failures: 3, Cooldown: time.Second, Window: time.Minute, MinCallers: 2}, clock.now)
	for range 20 {
		if ok, _ := callAs(b, outcomeFailed, "attacker"); !ok {
			t.Fatal("one key's failures opened the circuit")
		}
	}
	if b.current() != circuitClosed {
		t.Fatalf("state %s after one key's failures", b.current())
	}
	// A second key failing too: the server fails for everyone.
	callAs(b, outcomeFailed, "b")
	if b.current() != circuitOpen {
		t.Fatalf("state %s after failures from two keys", b.current())
	}
}

// Failures older than the window do not count.
func TestBreaker_Window(t *testing.T) {
	clock := newFakeClock()
	b := newBreaker(BreakerConfig{Failures: 3, Cooldown: time.Second, Window: 10 * time.Second, MinCallers: 1}, clock.now)
	call(b, outcomeFailed)
	call(b, outcomeFailed)
	clock.add(10 * time.Second)
	call(b, outcomeFailed)
	if b.current() != circuitClosed {
		t.Fatal("failures outside the window opened the circuit")
	}
	call(b, outcomeFailed)
	call(b, outcomeFailed)
	if b.current() != circuitOpen {
		t.Fatalf("state %s after 3 failures within the window", b.current())
	}
}

func TestOutcomeOf(t *testing.T) {
	tests := []struct {
		name    string
		err     *contracts.Error
		shorter bool // the call had less than the server's own timeout
		want    outcome
	}{
		{"a result (a tool error with isError included)", nil, false, outcomeHealthy},
		{"upstream_error", contracts.NewError(contracts.CodeUpstreamError, "x"), false, outcomeFailed},
		{"upstream_timeout", contracts.NewError(contracts.CodeUpstreamTimeout, "x"), false, outcomeFailed},
		{"upstream_timeout of a call shorter than the server's timeout", contracts.NewError(contracts.CodeUpstreamTimeout, "x"), true, outcomeOther},
		{"upstream_unauthorized", contracts.NewError(contracts.CodeUpstreamUnauthorized, "x"), false, outcomeHealthy},
		{"invalid_request (the caller's input refused)", contracts.NewError(contracts.CodeInvalidRequest, "x"), false, outcomeOther},
		{"seal_invalid", contracts.NewError(contracts.CodeSealInvalid, "x"), false, outcomeOther},
		{"timeout", contracts.NewError(contracts.CodeTimeout, "x"), false, outcomeOther},
		{"cancelled", contracts.NewError(contracts.CodeCancelled, "x"), false, outcomeOther},
		{"internal (a panic)", contracts.NewError(contracts.CodeInternal, "x"), false, outcomeOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := outcomeOf(tt.err, !tt.shorter); got != tt.want {
				t.Errorf("outcomeOf(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
