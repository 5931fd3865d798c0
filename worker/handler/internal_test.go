package handler

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// appendMillis writes what zerolog's Float64 wrote of the duration in
// milliseconds, to the microsecond (the shortest decimal).
func TestAppendMillis(t *testing.T) {
	for _, us := range []int64{0, 1, 9, 10, 100, 120, 999, 1000, 1001, 1010, 1500, 12345, 100000, 123456789, 9007199254740, -1, -999, -1500, -2000} {
		d := time.Duration(us) * time.Microsecond
		want := strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', -1, 64)
		if got := string(appendMillis(nil, d+999*time.Nanosecond*time.Duration(sign(us)))); got != want {
			t.Errorf("appendMillis(%s) = %s, want %s", d, got, want)
		}
	}
}

func sign(v int64) int64 {
	if v < 0 {
		return -1
	}
	return 1
}

// A call is cancelled whether its caller's cancellation comes before its
// context exists (during admission) or after; calls sharing a request id
// are cancelled together and unregistered one by one.
func TestRunning(t *testing.T) {
	r := newRunning()
	cancelled := func(ctx context.Context) bool { return ctx.Err() != nil }

	early := &runningCall{}
	r.add("a", early)
	if !r.cancel("a") {
		t.Fatal("a registered call was not found")
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.start(early, cancel)
	if !cancelled(ctx) || !r.cancelledByCaller(early) {
		t.Error("a call cancelled before its context existed runs on")
	}
	r.remove("a", early)

	first, second, other := &runningCall{}, &runningCall{}, &runningCall{}
	ctx1, cancel1 := context.WithCancel(context.Background())
	ctx2, cancel2 := context.WithCancel(context.Background())
	ctx3, cancel3 := context.WithCancel(context.Background())
	defer cancel1()
	defer cancel2()
	defer cancel3()
	r.add("b", first)
	r.start(first, cancel1)
	r.add("b", second)
	r.start(second, cancel2)
	r.add("c", other)
	r.start(other, cancel3)
	if r.cancel("nope") {
		t.Error("cancelled a request id that does not run")
	}
	if !r.cancel("b") || !cancelled(ctx1) || !cancelled(ctx2) || cancelled(ctx3) {
		t.Errorf("cancel(b): contexts ended %v %v %v, want true true false", cancelled(ctx1), cancelled(ctx2), cancelled(ctx3))
	}
	if r.cancelledByCaller(other) {
		t.Error("a call of another request id counts as cancelled")
	}
	r.remove("b", second)
	if r.calls["b"] != first || first.next != nil {
		t.Error("removing one of two calls of a request id lost the other")
	}
	r.remove("b", first)
	r.remove("c", other)
	if len(r.calls) != 0 {
		t.Errorf("%d request ids still registered", len(r.calls))
	}
	r.add("d", first)
	r.add("d", second)
	r.add("d", other)
	r.remove("d", second) // the middle one
	if r.calls["d"] != other || other.next != first || first.next != nil {
		t.Error("removing the middle call of three broke the chain")
	}
}
