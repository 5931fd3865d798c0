package contracts

import (
	"encoding/json"
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
	if got, ok := ParseSubject(s); !ok || got.Kind != SubjectJob || got.Server != "jira" {
		t.Fatalf("%s -> %+v %v", s, got, ok)
	}
	if got, ok := ParseSubject(CancelSubject("0194f0a1b2c3d4e5f60718293a4b")); !ok || got.Kind != SubjectCancel || !ValidJobID(got.ID) {
		t.Fatal("cancel subject")
	}
	if got, ok := ParseSubject(CancelSubject("call-id")); !ok || ValidJobID(got.ID) {
		t.Fatal("a call's cancel subject names a job")
	}
}

func TestJobRequest_WireNamesTheJobIDOnly(t *testing.T) {
	req := &JobRequest{RequestHeader: RequestHeader{Type: TypeJobRequest, RequestID: "0194f0a1b2c3d4e5f60718293a4b"}}
	data, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if _, ok := m["request_id"]; ok || m["job_id"] != "0194f0a1b2c3d4e5f60718293a4b" {
		t.Fatalf("encoded %s: want job_id and no request_id", data)
	}
	var back JobRequest
	if err := json.Unmarshal([]byte(`{"job_id":"j1","request_id":"r1","owner":"o"}`), &back); err != nil {
		t.Fatal(err)
	}
	if back.JobID() != "j1" || back.Owner != "o" {
		t.Fatalf("decoded %+v: want job id j1", back)
	}
}
