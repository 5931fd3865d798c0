package jobs

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/toolbus/toolbus/contracts"
)

// Cancel cancels owner's job id: a queued job never runs; a running one has
// its upstream call cancelled by its worker. A terminal job is returned as is.
func (s *Store) Cancel(ctx context.Context, owner, id string) (*contracts.JobRecord, *contracts.Error) {
	kv, _, _, cerr := s.bind(ctx)
	if cerr != nil {
		return nil, cerr
	}
	for range casRetries {
		rec, rev, cerr := s.get(ctx, owner, id)
		if cerr != nil {
			return nil, cerr
		}
		if rec.Status.Terminal() {
			return rec, nil
		}
		now := s.now().UTC()
		rec.Status, rec.FinishedAt = contracts.JobCancelled, &now
		rec.Error = contracts.NewError(contracts.CodeCancelled, "cancelled by the caller")
		data, _ := json.Marshal(rec)
		if _, err := kv.Update(ctx, contracts.JobKey(owner, id), data, rev); err != nil {
			var apiErr *jetstream.APIError
			if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
				continue // the worker moved it meanwhile: decide again
			}
			return nil, s.busError(err)
		}
		// Tell the worker running it, if any. The record is already final; a
		// lost notice is caught by the worker's periodic re-read of the record.
		_ = s.nc.Publish(contracts.CancelSubject(id), nil)
		return rec, nil
	}
	return nil, contracts.NewError(contracts.CodeOverloaded, "the job changed too often to cancel; try again")
}
