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

// call admits a call and reports its outcome.
func call(b *breaker, o outcome) (ok, probe bool) {
	ok, probe, _ = b.admit()
	if ok {
		b.done(probe, o)
	}
	return ok, probe
}

func TestBreaker_OpensAfterConsecutiveFailures(t *testing.T) {
	clock := newFakeClock()
	b := newBreaker(3, 10*time.Second, clock.now)

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
	b := newBreaker(1, time.Second, clock.now)
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
	b.done(false, outcomeHealthy)
	if b.current() != circuitHalfOpen {
		t.Fatalf("state %s", b.current())
	}
	// The probe fails: open for another cooldown.
	if tr := b.done(true, outcomeFailed); tr != opened || b.current() != circuitOpen {
		t.Fatalf("failed probe: %v %s", tr, b.current())
	}
	clock.add(time.Second)
	// An inconclusive probe (the request never reached the server) lets the
	// next call probe.
	_, probe, _ = b.admit()
	b.done(probe, outcomeOther)
	ok, probe, _ = b.admit()
	if !ok || !probe {
		t.Fatal("no new probe after an inconclusive one")
	}
	if tr := b.done(true, outcomeHealthy); tr != closed || b.current() != circuitClosed {
		t.Fatalf("healthy probe: %v %s", tr, b.current())
	}
	if ok, probe := call(b, outcomeHealthy); !ok || probe {
		t.Fatal("closed circuit refused a call")
	}
}

func TestOutcomeOf(t *testing.T) {
	tests := []struct {
		name string
		err  *contracts.Error
		want outcome
	}{
		{"a result (a tool error with isError included)", nil, outcomeHealthy},
		{"upstream_error", contracts.NewError(contracts.CodeUpstreamError, "x"), outcomeFailed},
		{"upstream_timeout", contracts.NewError(contracts.CodeUpstreamTimeout, "x"), outcomeFailed},
		{"upstream_unauthorized", contracts.NewError(contracts.CodeUpstreamUnauthorized, "x"), outcomeHealthy},
		{"seal_invalid", contracts.NewError(contracts.CodeSealInvalid, "x"), outcomeOther},
		{"timeout", contracts.NewError(contracts.CodeTimeout, "x"), outcomeOther},
		{"cancelled", contracts.NewError(contracts.CodeCancelled, "x"), outcomeOther},
		{"internal (a panic)", contracts.NewError(contracts.CodeInternal, "x"), outcomeOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := outcomeOf(tt.err); got != tt.want {
				t.Errorf("outcomeOf(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
