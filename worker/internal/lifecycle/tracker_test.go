package lifecycle

import (
	"context"
	"testing"
	"time"
)

func TestTracker_WaitsThenRefuses(t *testing.T) {
	tr := NewTracker()
	if !tr.Add() || !tr.Add() {
		t.Fatal("an open tracker refused work")
	}
	short, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if left := tr.CloseAndWait(short); left != 2 {
		t.Fatalf("%d still running, want 2", left)
	}
	if tr.Add() {
		t.Fatal("a closed tracker admitted work")
	}
	tr.Done()
	done := make(chan int, 1)
	go func() { done <- tr.CloseAndWait(context.Background()) }()
	tr.Done()
	select {
	case left := <-done:
		if left != 0 {
			t.Fatalf("%d left", left)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("CloseAndWait did not return when the work ended")
	}
}
