package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/telemetry"
	"github.com/toolbus/toolbus/worker/internal/admit"
	"github.com/toolbus/toolbus/worker/upstream"
)

// Bounds of a job's bookkeeping (never of its upstream call).
const (
	// claimTimeout bounds reading and claiming the record.
	claimTimeout = 10 * time.Second
	// finishTimeout bounds writing the outcome: result object and record.
	finishTimeout = 30 * time.Second
	// stopWriteTimeout bounds putting a job back in the queue when the
	// worker stops (its message comes back after the ack wait anyway).
	stopWriteTimeout = 5 * time.Second
	// retryDelay is the nak delay of a delivery that could not be decided
	// (the store unavailable, the record not visible yet).
	retryDelay = time.Second
	// writeRetryPause is the pause between attempts at writing an outcome
	// while the store is unavailable.
	writeRetryPause = 100 * time.Millisecond
	// missingRecordGrace is how long after publication a message whose
	// record is missing is retried rather than terminated: a replica may
	// not show a just-created record yet.
	missingRecordGrace = 10 * time.Second
	// maxReason bounds a logged reason.
	maxReason = 200
)

// outcome is what running a job produced.
type outcome struct {
	result   json.RawMessage
	err      *contracts.Error
	progress *contracts.JobProgress // the latest progress, written or not
	stopping bool                   // cancelled because the worker stops
}

// handle decides one delivery, runs the job when it is to run, and
// settles the message as the delivery decided.
func (r *Runner) handle(server string, msg jetstream.Msg) {
	start := time.Now()
	d := &delivery{server: server}
	defer func() { r.logDelivery(d, float64(time.Since(start).Microseconds())/1000) }()
	r.settle(msg, r.deliver(server, msg, d), d)
}

// deliver decides one delivery and, when the job is to run, runs it and
// records its outcome; it returns what becomes of the message. A panic is
// recovered: in the job's run it fails the job as internal (execute); in
// the bookkeeping around it the message comes back later.
func (r *Runner) deliver(server string, msg jetstream.Msg, d *delivery) (s settlement) {
	defer func() {
		if v := recover(); v != nil {
			r.logPanic(d, v)
			d.status, d.reason = logDeferred, "panic"
			s = settleRetry(retryDelay)
		}
	}()
	req, err := contracts.DecodeJobRequest(msg.Data())
	if err != nil {
		d.status, d.reason = logInvalid, clip(err.Error())
		return settleDrop("malformed job request")
	}
	d.jobID, d.keyID, d.tool, d.tokenFP = req.JobID(), req.KeyID, req.Tool, req.TokenFP
	infra := r.stores() // set: consuming starts after Setup

	jobCtx, cancelJob := context.WithCancelCause(r.runCtx)
	defer cancelJob(nil)
	jobCtx = telemetry.ExtractNATS(jobCtx, msg.Headers()) // the submitter's trace
	// Registered before the record says running, so that a cancellation
	// announced after the ingress's write is never missed.
	if !r.local.add(req.JobID(), cancelJob) {
		d.status = logDuplicate // the attempt running here acks for both
		return settleKeep()
	}
	defer r.local.remove(req.JobID())

	st, giveUp, s := r.claim(msg, req, infra.Records, d)
	if st == nil {
		return s
	}
	d.attempt = st.attempt
	var out outcome
	if giveUp {
		out.err = gaveUp(st.attempt)
	} else {
		out = r.execute(jobCtx, cancelJob, msg, req, st, d)
	}
	keep := r.keepInProgress(msg)
	defer keep.stop()
	if f := testBeforeFinish.Load(); f != nil {
		(*f)(req.JobID())
	}
	return r.finish(req, infra, st, out, d)
}

// testBeforeFinish, set only by this package's tests (export_test.go),
// runs before a job's outcome is written: a slow store, on demand.
var testBeforeFinish atomic.Pointer[func(jobID string)]

// claim reads the job's record and decides: it returns the record moved to
// running for this attempt, or nil and what becomes of the message when the
// job is not to run here. giveUp means the attempt must only fail the job:
// it has no attempt left.
func (r *Runner) claim(msg jetstream.Msg, req *contracts.JobRequest, kv jetstream.KeyValue, d *delivery) (*jobState, bool, settlement) {
	ctx, cancel := context.WithTimeout(context.Background(), claimTimeout)
	defer cancel()
	key := req.RecordKey()
	maxAttempts := r.jobs.MaxAttempts
	for range maxConflicts {
		rec, rev, err := loadRecord(ctx, kv, key)
		if errors.Is(err, errNoRecord) {
			if meta, merr := msg.Metadata(); merr == nil && r.now().Sub(meta.Timestamp) < missingRecordGrace {
				d.status, d.reason = logDeferred, "no job record yet"
				return nil, false, settleRetry(retryDelay)
			}
			d.status, d.reason = logNoRecord, "no job record (its retention passed, or it was never written)"
			return nil, false, settleDrop("no job record")
		}
		if err != nil {
			d.status, d.reason = logDeferred, clip(err.Error())
			return nil, false, settleRetry(retryDelay)
		}
		d.attempt = rec.Attempts
		now := r.now()
		next := *rec
		giveUp := false
		switch {
		case rec.Status.Terminal():
			d.status, d.reason = logSkipped, "job already "+string(rec.Status)
			return nil, false, settleDone()
		case rec.Status == contracts.JobRunning:
			// Not running here (it would be registered): the worker that
			// ran it was lost, and that attempt counts.
			if rec.Attempts >= maxAttempts {
				next.Status, next.FinishedAt, next.Error = contracts.JobFailed, &now, gaveUp(rec.Attempts)
			} else {
				next.Status, next.Progress, next.Error = contracts.JobQueued, nil, lostWorker(rec.Attempts)
			}
		case !now.Before(req.Expires()):
			next.Status, next.FinishedAt = contracts.JobExpired, &now
			next.Error = contracts.NewError(contracts.CodeTimeout, "the job did not start before its credential expired")
		case rec.Attempts == 0 && now.Sub(rec.CreatedAt) >= r.jobs.MaxQueueTime.D():
			next.Status, next.FinishedAt = contracts.JobExpired, &now
			next.Error = contracts.NewError(contracts.CodeTimeout, "the job did not start within %s", r.jobs.MaxQueueTime.D())
		case rec.Attempts >= maxAttempts:
			// Only a lowered max_attempts gets here. A queued job cannot
			// fail directly: take it, to fail it without running it.
			next.Status, next.StartedAt = contracts.JobRunning, &now
			giveUp = true
		default:
			next.Status, next.Attempts, next.StartedAt = contracts.JobRunning, rec.Attempts+1, &now
			next.FinishedAt, next.Progress, next.Error = nil, nil, nil
		}
		newRev, err := putRecord(ctx, kv, key, &next, rev)
		if isConflict(err) {
			continue
		}
		if err != nil {
			d.status, d.reason = logDeferred, clip(err.Error())
			return nil, false, settleRetry(retryDelay)
		}
		switch next.Status {
		case contracts.JobRunning:
			return &jobState{kv: kv, key: key, attempt: next.Attempts, rec: next, rev: newRev}, giveUp, settlement{}
		case contracts.JobQueued:
			d.reason = "attempt lost with its worker"
			continue // decide again on the queued record
		default:
			d.status, d.err = string(next.Status), next.Error
			return nil, false, settleDone()
		}
	}
	d.status, d.reason = logDeferred, errConflict.Error()
	return nil, false, settleRetry(retryDelay)
}

// execute runs a claimed job: the message must be the job its record
// describes and pass the worker's admission (package admit: its subject,
// server and tool, its sealed token opened for exactly this job; no replay
// guard, since a redelivered job legitimately opens its token again); then
// it calls the upstream, with a heartbeat and progress reports while the
// call runs. A panic fails the job as internal.
func (r *Runner) execute(jobCtx context.Context, cancelJob context.CancelCauseFunc, msg jetstream.Msg, req *contracts.JobRequest, st *jobState, d *delivery) (out outcome) {
	if e, reason := matchRecord(req, &st.rec); e != nil {
		d.reason = reason
		return outcome{err: e}
	}
	a, refusal := r.admit.Admit(admit.Request{Header: &req.RequestHeader, Kind: contracts.SubjectJob, Subject: msg.Subject(), Tool: req.Tool, Binding: req.Binding()})
	if refusal != nil {
		d.reason = refusal.Reason
		return outcome{err: refusal.Err}
	}
	if !a.Token.IsZero() {
		d.tokenFP = a.Token.Fingerprint()
	}

	hb := r.startHeartbeat(msg, st, cancelJob)
	defer hb.stop()
	pw := r.startProgress(st, cancelJob)
	defer func() { out.progress = pw.end() }()
	defer func() {
		if v := recover(); v != nil {
			r.logPanic(d, v)
			out, d.reason = outcome{err: errPanicked()}, "panic"
		}
	}()
	ctx, cancel := context.WithTimeout(jobCtx, a.Timeout)
	defer cancel()
	ctx, obs := r.startJob(ctx, req.Server, req.Tool, st.rec.CreatedAt) // telemetry.go
	out.err = errPanicked()                                             // what the observation records if the call panics
	defer func() { obs.End(out.err) }()
	result, err := r.up.CallTool(ctx, a.Server, a.Token, req.Tool, req.Arguments, upstream.WithProgress(pw.report))
	out = outcome{result: result}
	if err != nil {
		out.result = nil
		var ue *upstream.Error
		if errors.As(err, &ue) {
			out.err, d.reason = ue.Wire, ue.Detail
		} else {
			out.err, d.reason = upstream.Classify(err, ""), "unclassified upstream failure"
		}
		out.stopping = errors.Is(context.Cause(jobCtx), errStopping)
	}
	return out
}

// errPanicked is the error of a job whose run panicked.
func errPanicked() *contracts.Error {
	return contracts.NewError(contracts.CodeInternal, "the worker failed while running the job")
}

// matchRecord verifies that the message is the job its record describes.
func matchRecord(req *contracts.JobRequest, rec *contracts.JobRecord) (*contracts.Error, string) {
	if rec.ID == req.JobID() && rec.Owner == req.Owner && rec.Server == req.Server && rec.Tool == req.Tool && rec.KeyID == req.KeyID {
		return nil, ""
	}
	const reason = "the message does not match its job record"
	if req.Token != nil {
		return contracts.NewError(contracts.CodeSealInvalid, "sealed token refused: %s", reason), reason
	}
	return contracts.NewError(contracts.CodeInvalidRequest, "job refused: %s", reason), reason
}

// finish records the outcome and returns what becomes of the message: done
// for a final state, a retry after the backoff delay for a retryable
// failure, given back at once for a job cancelled because the worker stops.
func (r *Runner) finish(req *contracts.JobRequest, infra *Infra, st *jobState, out outcome, d *delivery) settlement {
	timeout := finishTimeout
	if out.stopping {
		timeout = stopWriteTimeout // do not hold up the worker's exit
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	if out.stopping {
		owned, cur, err := r.write(ctx, st, func(rec *contracts.JobRecord) {
			rec.Status, rec.Progress = contracts.JobQueued, nil
		})
		switch {
		case err != nil:
			d.status, d.reason = logDeferred, "record not written: "+clip(err.Error())
			return settleGiveBack()
		case owned:
			d.status, d.reason = logRequeued, "the worker is stopping"
			return settleGiveBack()
		default:
			return r.notOwned(ctx, infra, cur, "", d)
		}
	}

	var res storedResult
	if out.err == nil {
		var e *contracts.Error
		var err error
		res, e, err = r.storeResult(ctx, infra, req, st.attempt, out.result)
		if err != nil {
			// The result is lost: leave the record running; the job runs
			// again when its message comes back.
			d.status, d.reason = logDeferred, "result not stored: "+clip(err.Error())
			return settleRetry(retryDelay)
		}
		out.err = e
	}

	now := r.now()
	status := contracts.JobSucceeded
	switch {
	case out.err == nil:
	case out.err.Retryable && st.attempt < r.jobs.MaxAttempts:
		status = contracts.JobQueued
	default:
		status = contracts.JobFailed
	}
	owned, cur, err := r.write(ctx, st, func(rec *contracts.JobRecord) {
		rec.Status = status
		if out.progress != nil {
			rec.Progress = out.progress
		}
		switch status {
		case contracts.JobSucceeded:
			rec.FinishedAt, rec.Error = &now, nil
			rec.Result, rec.ResultObject, rec.ResultBytes = res.inline, res.object, res.size
		case contracts.JobFailed:
			rec.FinishedAt, rec.Error = &now, out.err
		case contracts.JobQueued:
			rec.Progress, rec.Error = nil, out.err
		}
	})
	if err != nil {
		// The job runs again when its message comes back.
		d.status, d.reason = logDeferred, "record not written: "+clip(err.Error())
		return settleRetry(retryDelay)
	}
	if !owned {
		return r.notOwned(ctx, infra, cur, res.object, d)
	}
	d.err = out.err
	if status == contracts.JobQueued {
		d.status = logRetry
		return settleRetry(r.backoff(st.attempt))
	}
	d.status = string(status)
	return settleDone()
}

// write is jobState.update, retried while the store is unavailable.
func (r *Runner) write(ctx context.Context, st *jobState, change func(*contracts.JobRecord)) (bool, *contracts.JobRecord, error) {
	for {
		owned, cur, err := st.update(ctx, change)
		if err == nil || errors.Is(err, errConflict) {
			return owned, cur, err
		}
		select {
		case <-ctx.Done():
			return false, nil, err
		case <-time.After(writeRetryPause):
		}
	}
}

// notOwned decides an outcome that could not be recorded because the
// record stopped being this attempt's: a cancelled job is done (its stored
// result removed), a record gone drops the message, and a job another
// attempt has taken over is left to that attempt.
func (r *Runner) notOwned(ctx context.Context, infra *Infra, cur *contracts.JobRecord, object string, d *delivery) settlement {
	if object != "" && (cur == nil || cur.ResultObject != object) {
		_ = infra.Results.Delete(ctx, object)
	}
	switch {
	case cur == nil:
		d.status, d.reason = logNoRecord, "the job record disappeared"
		return settleDrop("no job record")
	case cur.Status == contracts.JobCancelled:
		d.status, d.err = string(contracts.JobCancelled), cur.Error
		return settleDone()
	default:
		d.status, d.reason = logNotOwned, "the job is "+string(cur.Status)+" by another attempt"
		return settleKeep()
	}
}

// backoff is the delay before the retry that follows attempt.
func (r *Runner) backoff(attempt int) time.Duration {
	b := r.jobs.Backoff
	return b[min(max(attempt-1, 0), len(b)-1)].D()
}

func gaveUp(attempts int) *contracts.Error {
	return contracts.NewError(contracts.CodeUpstreamError, "gave up after %d attempts", attempts)
}

func lostWorker(attempt int) *contracts.Error {
	return contracts.NewError(contracts.CodeUpstreamError, "attempt %d was lost with its worker", attempt)
}

func clip(s string) string {
	if len(s) > maxReason {
		return s[:maxReason]
	}
	return s
}

func joinReason(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
