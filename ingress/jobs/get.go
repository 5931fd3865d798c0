package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/toolbus/toolbus/contracts"
)

// Get returns owner's job id.
func (s *Store) Get(ctx context.Context, owner, id string) (*contracts.JobRecord, *contracts.Error) {
	rec, _, cerr := s.get(ctx, owner, id)
	return rec, cerr
}

func (s *Store) get(ctx context.Context, owner, id string) (*contracts.JobRecord, uint64, *contracts.Error) {
	if !contracts.ValidJobID(id) {
		return nil, 0, notFound(id)
	}
	kv, _, _, cerr := s.bind(ctx)
	if cerr != nil {
		return nil, 0, cerr
	}
	entry, err := kv.Get(ctx, contracts.JobKey(owner, id))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, 0, notFound(id)
	}
	if err != nil {
		return nil, 0, s.busError(err)
	}
	rec, err := contracts.DecodeJobRecord(entry.Value())
	if err != nil {
		s.log.Error().Str("job_id", id).Err(err).Msg("unreadable job record")
		return nil, 0, contracts.NewError(contracts.CodeInternal, "the job record is unreadable")
	}
	return rec, entry.Revision(), nil
}

// Wait returns owner's job id as soon as it is terminal, or when wait ends
// (whichever is first), bounded by ctx.
func (s *Store) Wait(ctx context.Context, owner, id string, wait time.Duration) (*contracts.JobRecord, *contracts.Error) {
	rec, cerr := s.Get(ctx, owner, id)
	if cerr != nil || rec.Status.Terminal() || wait <= 0 {
		return rec, cerr
	}
	kv, _, _, cerr := s.bind(ctx)
	if cerr != nil {
		return nil, cerr
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	w, err := kv.Watch(ctx, contracts.JobKey(owner, id))
	if err != nil {
		return rec, nil
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return rec, nil // the wait is over: the latest state
		case entry, ok := <-w.Updates():
			if !ok {
				return rec, nil
			}
			if entry == nil { // end of the initial values
				continue
			}
			if entry.Operation() != jetstream.KeyValuePut {
				return nil, notFound(id) // expired or purged meanwhile
			}
			if next, err := contracts.DecodeJobRecord(entry.Value()); err == nil {
				rec = next
				if rec.Status.Terminal() {
					return rec, nil
				}
			}
		}
	}
}

// Result returns the job's result: inline, or read from the object store.
func (s *Store) Result(ctx context.Context, rec *contracts.JobRecord) (json.RawMessage, *contracts.Error) {
	if rec.ResultObject == "" {
		return rec.Result, nil
	}
	_, obj, _, cerr := s.bind(ctx)
	if cerr != nil {
		return nil, cerr
	}
	data, err := obj.GetBytes(ctx, rec.ResultObject)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, notFound(rec.ID)
	}
	if err != nil {
		return nil, s.busError(err)
	}
	return data, nil
}

// OpenResult opens a result kept in the object store for streaming, with
// its size; a result inline in the record (rec.ResultObject empty) has
// none to open: use Result. The caller closes the reader.
func (s *Store) OpenResult(ctx context.Context, rec *contracts.JobRecord) (io.ReadCloser, int64, *contracts.Error) {
	_, obj, _, cerr := s.bind(ctx)
	if cerr != nil {
		return nil, 0, cerr
	}
	r, err := obj.Get(ctx, rec.ResultObject)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, 0, notFound(rec.ID)
	}
	if err != nil {
		return nil, 0, s.busError(err)
	}
	info, err := r.Info()
	if err != nil {
		_ = r.Close()
		return nil, 0, s.busError(err)
	}
	return r, int64(info.Size), nil
}
