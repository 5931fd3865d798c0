package contracts

import (
	"encoding/json"
	"time"
)

// TypeUsage is the type of a Usage record.
const TypeUsage = "toolbus.usage.v1"

// usageSlots is how many slots a Usage spreads one retention period over.
const usageSlots = 24

// Usage is what one gateway key's async jobs keep in the job store: the
// records it created and the result bytes its jobs stored, in slots of
// 1/24 of the retention period, so that what has expired drops out (a slot
// counts until its last job can have expired: up to one slot too long).
// Ingresses add jobs as they accept them and check the totals against the
// key's quota; workers add the bytes of the results they store. It lives in
// JobsBucket under UsageKey.
type Usage struct {
	Type  string      `json:"type"`
	Slots []UsageSlot `json:"slots"`
}

// UsageSlot is one slot of a Usage: what was added from Start (Unix
// seconds) on.
type UsageSlot struct {
	Start int64 `json:"start"`
	Bytes int64 `json:"bytes"`
	Jobs  int64 `json:"jobs"`
}

// usageSlot is the width of a slot for retention, at least a second.
func usageSlot(retention time.Duration) int64 {
	return max(int64(retention/usageSlots/time.Second), 1)
}

// Add counts bytes and jobs at now, dropping slots that have expired.
func (u *Usage) Add(now time.Time, retention time.Duration, bytes, jobs int64) {
	u.Type = TypeUsage
	width := usageSlot(retention)
	start := now.Unix() / width * width
	u.prune(now, retention)
	if n := len(u.Slots); n > 0 && u.Slots[n-1].Start == start {
		u.Slots[n-1].Bytes += bytes
		u.Slots[n-1].Jobs += jobs
		return
	}
	u.Slots = append(u.Slots, UsageSlot{Start: start, Bytes: bytes, Jobs: jobs})
}

// Total returns the bytes and jobs counted within retention of now.
func (u *Usage) Total(now time.Time, retention time.Duration) (bytes, jobs int64) {
	oldest := u.oldest(now, retention)
	for _, s := range u.Slots {
		if s.Start >= oldest {
			bytes += s.Bytes
			jobs += s.Jobs
		}
	}
	return bytes, jobs
}

// oldest is the start of the oldest slot that may still hold a live job.
func (u *Usage) oldest(now time.Time, retention time.Duration) int64 {
	width := usageSlot(retention)
	return (now.Add(-retention).Unix()/width - 1) * width
}

func (u *Usage) prune(now time.Time, retention time.Duration) {
	oldest := u.oldest(now, retention)
	kept := u.Slots[:0]
	for _, s := range u.Slots {
		if s.Start >= oldest {
			kept = append(kept, s)
		}
	}
	u.Slots = kept
}

// DecodeUsage decodes a Usage; an empty value is no usage.
func DecodeUsage(data []byte) (*Usage, error) {
	u := &Usage{Type: TypeUsage}
	if len(data) == 0 {
		return u, nil
	}
	if err := json.Unmarshal(data, u); err != nil {
		return nil, badMessage("%v", err)
	}
	if u.Type != TypeUsage || len(u.Slots) > 4*usageSlots {
		return nil, badMessage("not a usage record")
	}
	return u, nil
}
