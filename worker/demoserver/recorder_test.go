package demoserver

import (
	"net/http/httptest"
	"strconv"
	"testing"
)

func TestRecorder_KeepsTheLatestOnly(t *testing.T) {
	var r Recorder
	for i := range MaxRecorded + 5 {
		req := httptest.NewRequest("POST", "/mcp", nil)
		req.Header.Set("Authorization", strconv.Itoa(i))
		r.record(req)
	}
	got := r.Authorizations()
	if len(got) > MaxRecorded || len(got) < MaxRecorded/2 || got[len(got)-1] != strconv.Itoa(MaxRecorded+4) {
		t.Fatalf("kept %d, last %q", len(got), got[len(got)-1])
	}
	for i := 1; i < len(got); i++ { // still in order, oldest first, none skipped
		prev, _ := strconv.Atoi(got[i-1])
		if cur, _ := strconv.Atoi(got[i]); cur != prev+1 {
			t.Fatalf("out of order at %d: %s after %s", i, got[i], got[i-1])
		}
	}
}
