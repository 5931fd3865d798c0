package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/toolbus/toolbus/contracts"
)

// maxConflicts bounds the compare-and-set retries of one record change.
const maxConflicts = 16

// Record store errors.
var (
	// errNoRecord: the record does not exist (never written, expired or deleted).
	errNoRecord = errors.New("no job record")
	// errConflict: the record changed too often to apply a change.
	errConflict = errors.New("the job record keeps changing")
)

// loadRecord reads a record and its revision.
func loadRecord(ctx context.Context, kv jetstream.KeyValue, key string) (*contracts.JobRecord, uint64, error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, 0, errNoRecord
	}
	if err != nil {
		return nil, 0, err
	}
	rec, err := contracts.DecodeJobRecord(e.Value())
	if err != nil {
		return nil, 0, fmt.Errorf("job record %s: %w", key, err)
	}
	return rec, e.Revision(), nil
}

// putRecord writes rec if the record is still at revision rev; a conflict
// is jetstream.ErrKeyRevisionMismatch.
func putRecord(ctx context.Context, kv jetstream.KeyValue, key string, rec *contracts.JobRecord, rev uint64) (uint64, error) {
	data, err := json.Marshal(rec)
	if err != nil {
		return 0, err
	}
	return kv.Update(ctx, key, data, rev)
}

func isConflict(err error) bool { return errors.Is(err, jetstream.ErrKeyRevisionMismatch) }

// jobState is one attempt's view of its record: the record as last written
// or read and its revision. The attempt owns the record while it is running
// with the attempt's number of attempts. One goroutine at a time uses it.
type jobState struct {
	kv      jetstream.KeyValue
	key     string
	attempt int
	rec     contracts.JobRecord
	rev     uint64
}

// owns reports whether rec is still this attempt's.
func (s *jobState) owns(rec *contracts.JobRecord) bool {
	return rec.Status == contracts.JobRunning && rec.Attempts == s.attempt
}

// update applies change to the attempt's record with compare-and-set. On a
// conflict it reads the record again: while the attempt still owns it, the
// change is applied again on top; otherwise nothing is written and owned is
// false, with the current record (nil when it is gone). change must assign
// fields, not modify what they point to.
func (s *jobState) update(ctx context.Context, change func(*contracts.JobRecord)) (owned bool, current *contracts.JobRecord, err error) {
	for range maxConflicts {
		next := s.rec
		change(&next)
		rev, err := putRecord(ctx, s.kv, s.key, &next, s.rev)
		if err == nil {
			s.rec, s.rev = next, rev
			return true, &s.rec, nil
		}
		if !isConflict(err) {
			return false, nil, err
		}
		cur, curRev, err := loadRecord(ctx, s.kv, s.key)
		if errors.Is(err, errNoRecord) {
			return false, nil, nil
		}
		if err != nil {
			return false, nil, err
		}
		if !s.owns(cur) {
			return false, cur, nil
		}
		s.rec, s.rev = *cur, curRev
	}
	return false, nil, errConflict
}
