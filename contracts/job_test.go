package contracts

import (
	"testing"
	"time"
)

func TestJobStatus_StateMachine(t *testing.T) {
	all := []JobStatus{JobQueued, JobRunning, JobSucceeded, JobFailed, JobCancelled, JobExpired}
	allowed := map[[2]JobStatus]bool{
		{JobQueued, JobRunning}: true, {JobQueued, JobCancelled}: true, {JobQueued, JobExpired}: true,
		{JobRunning, JobSucceeded}: true, {JobRunning, JobFailed}: true, {JobRunning, JobCancelled}: true,
		{JobRunning, JobQueued}: true, // a retry
	}
	for _, from := range all {
		for _, to := range all {
			if got := from.CanBecome(to); got != allowed[[2]JobStatus{from, to}] {
				t.Errorf("%s -> %s: %v", from, to, got)
			}
		}
		if from.Terminal() != (from != JobQueued && from != JobRunning) {
			t.Errorf("%s terminal = %v", from, from.Terminal())
		}
	}
	if JobStatus("done").Valid() {
		t.Error("unknown status valid")
	}
}

func TestNewJobID_SortsByTime(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 15, 0, 0, 0, time.UTC)
	a, b := NewJobID(t0), NewJobID(t0.Add(time.Millisecond))
	if !ValidJobID(a) || !ValidJobID(b) || a >= b {
		t.Fatalf("ids %q %q", a, b)
	}
	if NewJobID(t0) == a {
		t.Fatal("two ids in one millisecond are equal")
	}
	for _, bad := range []string{"", "x", a[:27], a + "0", "0194F0A1B2C3D4E5F60718293A4B"} {
		if ValidJobID(bad) {
			t.Errorf("ValidJobID(%q)", bad)
		}
	}
}

func TestOwner_SeparatesKeysAndUsers(t *testing.T) {
	owners := map[string]bool{}
	for _, o := range []string{Owner("a", ""), Owner("a", "fp_1"), Owner("b", ""), Owner("b", "fp_1"), Owner("a\x00fp_1", "")} {
		if owners[o] {
			t.Fatalf("owner collision %s", o)
		}
		owners[o] = true
		if !validOwner(o) {
			t.Fatalf("owner %q invalid", o)
		}
	}
}

func TestJobSubjects(t *testing.T) {
	s := JobSubject("jira", KeyTag("team-a"))
	if server, ok := ServerFromJobSubject(s); !ok || server != "jira" {
		t.Fatalf("%s -> %q %v", s, server, ok)
	}
	if id, ok := JobIDFromCancelSubject(CancelSubject("0194f0a1b2c3d4e5f60718293a4b")); !ok || id != "0194f0a1b2c3d4e5f60718293a4b" {
		t.Fatal("cancel subject")
	}
	if _, ok := JobIDFromCancelSubject(CancelSubject("../x")); ok {
		t.Fatal("bad job id accepted")
	}
}
