package jobs

import (
	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/worker/internal/panics"
)

// Statuses of a delivery in the log (the status field). The job states are
// logged as themselves; the others say what happened to a delivery that
// did not end the job.
const (
	logRetry     = "retry"       // back to queued after a retryable failure
	logRequeued  = "requeued"    // back to queued because the worker stops
	logSkipped   = "skipped"     // the record was terminal already
	logDuplicate = "duplicate"   // delivered again while this worker runs it
	logNotOwned  = "not_owned"   // the record stopped being this attempt's
	logInvalid   = "invalid"     // the message does not decode
	logNoRecord  = "no_record"   // no record: the message was terminated
	logDeferred  = "deferred"    // the record could not be read or written; retried later
	logLost      = "lost_worker" // the record was left running by a lost worker
)

// maxLoggedFP bounds a token fingerprint taken from a message for logging.
const maxLoggedFP = 32

// delivery is what one delivery's log line reports.
type delivery struct {
	jobID, keyID, server, tool, tokenFP string
	attempt                             int
	status                              string
	err                                 *contracts.Error
	reason                              string // for logs only, never a secret
}

func (r *Runner) logDelivery(d *delivery, ms float64) {
	r.metrics.JobDelivery(d.server, d.status)
	ev := r.log.Info()
	switch d.status {
	case string(contracts.JobFailed), logRetry, logInvalid, logNoRecord, logDeferred, logNotOwned, logLost:
		ev = r.log.Warn()
	}
	if len(d.tokenFP) > maxLoggedFP {
		d.tokenFP = d.tokenFP[:maxLoggedFP]
	}
	ev = ev.Str("job_id", d.jobID).
		Str("key_id", d.keyID).
		Str("server", d.server).
		Str("tool", d.tool).
		Int("attempt", d.attempt).
		Str("status", d.status).
		Float64("duration_ms", ms).
		Str("token_fp", d.tokenFP)
	if d.err != nil {
		ev = ev.Str("code", string(d.err.Code))
	}
	if d.reason != "" {
		ev = ev.Str("reason", d.reason)
	}
	ev.Msg("job")
}

// logPanic logs a panic recovered while handling the delivery d.
func (r *Runner) logPanic(d *delivery, v any) {
	panics.Log(r.log.Error().Str("job_id", d.jobID).Str("server", d.server).Str("tool", d.tool).Int("attempt", d.attempt), v)
}
