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
	if len(got) != MaxRecorded || got[0] != "5" || got[len(got)-1] != strconv.Itoa(MaxRecorded+4) {
		t.Fatalf("kept %d, first %q, last %q", len(got), got[0], got[len(got)-1])
	}
}
