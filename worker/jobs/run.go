package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/telemetry"
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

// handle decides one delivery and, when the job is to run, runs it.
func (r *Runner) handle(server string, msg jetstream.Msg) {
	start := time.Now()
	d := &delivery{server: server}
	defer func() { r.logDelivery(d, float64(time.Since(start).Microseconds())/1000) }()

	req, err := contracts.DecodeJobRequest(msg.Data())
	if err != nil {
		d.status, d.reason = logInvalid, clip(err.Error())
		_ = msg.TermWithReason("malformed job request")
		return
	}
	d.jobID, d.keyID, d.tool, d.tokenFP = req.JobID, req.KeyID, req.Tool, req.TokenFP
	infra := r.stores() // set: consuming starts after Setup

	jobCtx, cancelJob := context.WithCancelCause(r.runCtx)
	defer cancelJob(nil)
	jobCtx = telemetry.ExtractNATS(jobCtx, msg.Headers()) // the submitter's trace
	// Registered before the record says running, so that a cancellation
	// announced after the ingress's write is never missed.
	if !r.local.add(req.JobID, cancelJob) {
		d.status = logDuplicate // the attempt running here acks for both
		return
	}
	defer r.local.remove(req.JobID)

	st, giveUp := r.claim(msg, req, infra.Records, d)
	if st == nil {
		return
	}
	d.attempt = st.attempt
	var out outcome
	if giveUp {
		out.err = gaveUp(st.attempt)
	} else {
		out = r.execute(jobCtx, cancelJob, msg, req, server, st, d)
	}
	r.finish(msg, req, infra, st, out, d)
}

// claim reads the job's record and decides: it returns the record moved to
// running for this attempt, or nil when the job is not to run here (the
// message has then been settled as the record says). giveUp means the
// attempt must only fail the job: it has no attempt left.
func (r *Runner) claim(msg jetstream.Msg, req *contracts.JobRequest, kv jetstream.KeyValue, d *delivery) (*jobState, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), claimTimeout)
	defer cancel()
	key := req.RecordKey()
	maxAttempts := r.jobs.MaxAttempts
	for range maxConflicts {
		rec, rev, err := loadRecord(ctx, kv, key)
		if errors.Is(err, errNoRecord) {
			if meta, merr := msg.Metadata(); merr == nil && r.now().Sub(meta.Timestamp) < missingRecordGrace {
				d.status, d.reason = logDeferred, "no job record yet"
				_ = msg.NakWithDelay(retryDelay)
				return nil, false
			}
			d.status, d.reason = logNoRecord, "no job record (its retention passed, or it was never written)"
			_ = msg.TermWithReason("no job record")
			return nil, false
		}
		if err != nil {
			d.status, d.reason = logDeferred, clip(err.Error())
			_ = msg.NakWithDelay(retryDelay)
			return nil, false
		}
		d.attempt = rec.Attempts
		now := r.now()
		next := *rec
		giveUp := false
		switch {
		case rec.Status.Terminal():
			d.status, d.reason = logSkipped, "job already "+string(rec.Status)
			r.ack(msg, d)
			return nil, false
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
			_ = msg.NakWithDelay(retryDelay)
			return nil, false
		}
		switch next.Status {
		case contracts.JobRunning:
			return &jobState{kv: kv, key: key, attempt: next.Attempts, rec: next, rev: newRev}, giveUp
		case contracts.JobQueued:
			d.reason = "attempt lost with its worker"
			continue // decide again on the queued record
		default:
			d.status, d.err = string(next.Status), next.Error
			r.ack(msg, d)
			return nil, false
		}
	}
	d.status, d.reason = logDeferred, errConflict.Error()
	_ = msg.NakWithDelay(retryDelay)
	return nil, false
}

// execute runs a claimed job: it checks the message against its subject,
// its record and the server, opens the token and calls the upstream, with
// a heartbeat and progress reports while the call runs.
func (r *Runner) execute(jobCtx context.Context, cancelJob context.CancelCauseFunc, msg jetstream.Msg, req *contracts.JobRequest, server string, st *jobState, d *delivery) outcome {
	srv := r.file.MCPServers[server]
	if e, reason := check(req, msg.Subject(), &st.rec, srv); e != nil {
		d.reason = reason
		return outcome{err: e}
	}
	token, e := r.open(req, srv, d)
	if e != nil {
		return outcome{err: e}
	}

	hb := r.startHeartbeat(msg, st, cancelJob)
	pw := r.startProgress(st, cancelJob)
	ctx, cancel := context.WithTimeout(jobCtx, boundTimeout(req.Timeout(), srv))
	ctx, obs := r.startJob(ctx, server, req.Tool, st.rec.CreatedAt) // telemetry.go
	result, err := r.up.CallTool(ctx, srv, token, req.Tool, req.Arguments, upstream.WithProgress(pw.report))
	cancel()
	hb.stop()
	out := outcome{result: result, progress: pw.end()}
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
	obs.End(out.err)
	return out
}

// check verifies that the message is the job its record describes, on its
// own server's subject, for a tool the server allows.
func check(req *contracts.JobRequest, subject string, rec *contracts.JobRecord, srv *config.Server) (*contracts.Error, string) {
	refuse := func(reason string) (*contracts.Error, string) {
		if req.Token != nil {
			return contracts.NewError(contracts.CodeSealInvalid, "sealed token refused: %s", reason), reason
		}
		return contracts.NewError(contracts.CodeInvalidRequest, "job refused: %s", reason), reason
	}
	subjectServer, ok := contracts.ServerFromJobSubject(subject)
	if !ok || subjectServer != req.Server {
		return refuse("sent on another server's subject")
	}
	if rec.ID != req.JobID || rec.Owner != req.Owner || rec.Server != req.Server || rec.Tool != req.Tool || rec.KeyID != req.KeyID {
		return refuse("the message does not match its job record")
	}
	if srv == nil {
		return contracts.NewError(contracts.CodeUnknownServer, "no server %q on this worker", req.Server), "unknown server"
	}
	if !srv.ToolAllowed(req.Tool) {
		return contracts.NewError(contracts.CodeForbidden, "tool %q is not allowed on server %q", req.Tool, srv.Name), "tool not allowed"
	}
	return nil, ""
}

// open returns the user's credential for srv: none for auth none servers
// (the sealed field is not even opened) and jobs without one; otherwise the
// token opened for exactly this job. There is no replay guard: a
// redelivered job legitimately opens its token again.
func (r *Runner) open(req *contracts.JobRequest, srv *config.Server, d *delivery) (contracts.Token, *contracts.Error) {
	if srv.Auth == config.AuthNone || req.Token == nil {
		return contracts.Token{}, nil
	}
	v, err := r.opener.Open(req.Token, req.Binding(), r.now())
	if err != nil {
		d.reason = sealReason(err)
		r.metrics.SealFailed(req.Server, d.reason)
		return contracts.Token{}, contracts.NewError(contracts.CodeSealInvalid, "sealed token refused: %s", d.reason)
	}
	token := contracts.NewToken(v)
	d.tokenFP = token.Fingerprint()
	return token, nil
}

// finish records the outcome, then settles the message: ack for a final
// state, nak with the backoff delay for a retry, nak at once for a job
// given back because the worker stops.
func (r *Runner) finish(msg jetstream.Msg, req *contracts.JobRequest, infra *Infra, st *jobState, out outcome, d *delivery) {
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
			_ = msg.Nak()
		case owned:
			d.status, d.reason = logRequeued, "the worker is stopping"
			_ = msg.Nak()
		default:
			r.settle(ctx, msg, infra, cur, "", d)
		}
		return
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
			_ = msg.NakWithDelay(retryDelay)
			return
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
		_ = msg.NakWithDelay(retryDelay)
		return
	}
	if !owned {
		r.settle(ctx, msg, infra, cur, res.object, d)
		return
	}
	d.err = out.err
	if status == contracts.JobQueued {
		d.status = logRetry
		_ = msg.NakWithDelay(r.backoff(st.attempt))
		return
	}
	d.status = string(status)
	r.ack(msg, d)
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

// settle handles an outcome that could not be recorded because the record
// stopped being this attempt's: a cancelled job is acked (its stored result
// removed), a record gone terminates the message, and a job another
// attempt has taken over is left to that attempt.
func (r *Runner) settle(ctx context.Context, msg jetstream.Msg, infra *Infra, cur *contracts.JobRecord, object string, d *delivery) {
	if object != "" && (cur == nil || cur.ResultObject != object) {
		_ = infra.Results.Delete(ctx, object)
	}
	switch {
	case cur == nil:
		d.status, d.reason = logNoRecord, "the job record disappeared"
		_ = msg.TermWithReason("no job record")
	case cur.Status == contracts.JobCancelled:
		d.status, d.err = string(contracts.JobCancelled), cur.Error
		r.ack(msg, d)
	default:
		d.status, d.reason = logNotOwned, "the job is "+string(cur.Status)+" by another attempt"
	}
}

// ack acknowledges msg without waiting for the server's confirmation: the
// record, written before, is the truth. An ack that is lost brings the
// message back after ack_wait, and that delivery finds the record terminal
// and acks it then. (Waiting for the confirmation cost a JetStream round
// trip per job: a quarter of a worker's per-job round trips.)
func (r *Runner) ack(msg jetstream.Msg, d *delivery) {
	if err := msg.Ack(); err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
		d.reason = joinReason(d.reason, "ack not sent: "+clip(err.Error()))
	}
}

// backoff is the delay before the retry that follows attempt.
func (r *Runner) backoff(attempt int) time.Duration {
	b := r.jobs.Backoff
	return b[min(max(attempt-1, 0), len(b)-1)].D()
}

// boundTimeout is the job's timeout within the server's maximum.
func boundTimeout(requested time.Duration, srv *config.Server) time.Duration {
	if limit := srv.MaxTimeout.D(); limit > 0 && requested > limit {
		return limit
	}
	return requested
}

func gaveUp(attempts int) *contracts.Error {
	return contracts.NewError(contracts.CodeUpstreamError, "gave up after %d attempts", attempts)
}

func lostWorker(attempt int) *contracts.Error {
	return contracts.NewError(contracts.CodeUpstreamError, "attempt %d was lost with its worker", attempt)
}

// sealReason names why a sealed token was refused, without detail.
func sealReason(err error) string {
	switch {
	case errors.Is(err, contracts.ErrSealExpired):
		return "expired"
	case errors.Is(err, contracts.ErrSealUnknownKey):
		return "unknown key"
	default:
		return "does not open for this job"
	}
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
