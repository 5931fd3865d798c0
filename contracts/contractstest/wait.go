package contractstest

import (
	"context"
	"strings"
	"testing"
	"time"
)

// WaitTimeout bounds every wait in the tests: generous, since the whole
// suite runs at once with the race detector on two cores.
const WaitTimeout = 30 * time.Second

// Ctx returns a context that ends after WaitTimeout or with the test.
func Ctx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), WaitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// Eventually polls cond every few milliseconds until it holds, and fails
// the test naming what never happened if WaitTimeout passes first.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(WaitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", WaitTimeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// WaitReturn waits until what, run in a goroutine, sends its result on
// done, and fails the test if the result is an error or if WaitTimeout
// passes first.
func WaitReturn(t testing.TB, what string, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("%s: %v", what, err)
		}
	case <-time.After(WaitTimeout):
		t.Fatalf("%s did not return within %s", what, WaitTimeout)
	}
}

// Contains fails the test for each of wants that got lacks, naming what got
// is (stdout, a log, a body) and showing it.
func Contains(t testing.TB, what, got string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(got, want) {
			t.Errorf("%s lacks %q:\n%s", what, want, got)
		}
	}
}
