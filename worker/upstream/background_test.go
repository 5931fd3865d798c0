package upstream

import (
	"testing"
	"time"

	"github.com/toolbus/toolbus/contracts/contractstest"
)

// Close waits for the background work running, and none starts once it
// has begun: a late token request is refused, never added to a
// WaitGroup being waited on.
func TestBackgroundWork_CloseWaitsAndRefusesLateWork(t *testing.T) {
	var b backgroundWork
	if !b.enter() {
		t.Fatal("work refused before close")
	}
	closed := make(chan struct{})
	go func() {
		b.close()
		close(closed)
	}()
	// close has begun once enter is refused; it still waits for the
	// work that entered before.
	contractstest.Eventually(t, "close to refuse new work", func() bool {
		if b.enter() {
			b.leave()
			return false
		}
		return true
	})
	select {
	case <-closed:
		t.Fatal("close returned while work was running")
	default:
	}
	b.leave()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("close did not return after the work left")
	}
}
