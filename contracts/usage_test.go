package contracts

import (
	"encoding/json"
	"testing"
	"time"
)

// Usage counts within the retention period and forgets what has expired
// (at most one slot late).
func TestUsage_AddAndExpire(t *testing.T) {
	const retention = 24 * time.Hour
	t0 := time.Date(2026, 11, 30, 10, 30, 0, 0, time.UTC)
	var u Usage
	u.Add(t0, retention, 100, 1)
	u.Add(t0.Add(time.Minute), retention, 50, 1)
	u.Add(t0.Add(3*time.Hour), retention, 7, 0)
	if b, j := u.Total(t0.Add(4*time.Hour), retention); b != 157 || j != 2 {
		t.Fatalf("total %d bytes %d jobs, want 157 and 2", b, j)
	}
	if b, _ := u.Total(t0.Add(retention+2*time.Hour), retention); b != 7 {
		t.Fatalf("after the first slot expired: %d bytes, want 7", b)
	}
	u.Add(t0.Add(2*retention), retention, 1, 1)
	if len(u.Slots) != 1 {
		t.Fatalf("expired slots kept: %+v", u.Slots)
	}
	data, _ := json.Marshal(&u)
	back, err := DecodeUsage(data)
	if err != nil || len(back.Slots) != 1 {
		t.Fatalf("round trip: %+v %v", back, err)
	}
	if _, err := DecodeUsage([]byte(`{"type":"other"}`)); err == nil {
		t.Fatal("a record of another type decoded")
	}
}
