// Package jobs runs a worker's share of the durable async jobs: it creates
// the JetStream infrastructure, takes jobs from the shared durable consumer
// of every server the worker serves, moves each job's record through the
// state machine of contracts/job.go, calls the upstream, records the result
// and only then acknowledges the message.
//
// # Infrastructure
//
// Workers, not ingresses, create the infrastructure (Setup), idempotently
// and again after the NATS server lost it: the work-queue stream
// contracts.JobsStream on contracts.AllJobsSubject (file storage, discard
// new: a full stream refuses new jobs and never drops one it holds), the KV
// bucket contracts.JobsBucket (history 1) and the object store
// contracts.ResultsBucket, both with jobs.retention as TTL. Each served
// server has one durable pull consumer, contracts.JobsConsumer(server),
// filtered on contracts.ServerJobsSubject(server) and shared by every worker
// that serves the server: that is how jobs spread over workers and how
// dedicated pools (worker --servers) get only their servers' jobs.
// Start does not wait for JetStream: it retries with backoff, bounded by
// Stop, and Ready reports when every served server is being consumed.
//
// # Running a job
//
// A delivery is decided by the job's record (contracts.JobRecord at
// JobRequest.RecordKey), never by the message:
//
//   - no record: the record's retention has passed (or it was never
//     written); the message is terminated. A message younger than a few
//     seconds is retried first, in case the record is not visible yet.
//   - terminal (succeeded, failed, cancelled, expired): acknowledged, the
//     job is not run again.
//   - running, not on this worker: the worker that ran it was lost (its
//     message was redelivered after jobs.ack_wait without a heartbeat). The
//     lost attempt counts: the record goes back to queued, or to failed
//     when no attempt is left.
//   - queued: expired when its token's expiry has passed, or when it never
//     started within jobs.max_queue_time of its creation; failed when
//     jobs.max_attempts attempts have run; otherwise a compare-and-set
//     moves it to running (attempts + 1) and this worker runs it.
//
// Every change of a record is a compare-and-set on its revision; on a
// conflict the record is read again and the decision made again, so a
// running attempt never overwrites a cancelled record or another
// attempt's record.
//
// Before the upstream call, the message must be the job its record
// describes and pass the worker's admission (worker/internal/admit, the
// same as a synchronous call's, without the replay guard: a redelivered
// job opens its token again). A panic while running the job fails it as
// internal.
//
// While a job runs, and while its outcome is written, its message is kept
// with InProgress every jobs.ack_wait/3; while it runs its record is
// re-read at the same pace, and MCP
// progress notifications from the upstream are written to the record at
// most every 250 ms. The upstream call is bounded by the job's timeout
// within the server's max_timeout, and is cancelled when the job is
// cancelled (contracts.CancelSubject, which every worker hears) or its
// record stops being this attempt's.
//
// The outcome is written to the record first, and only then is the
// message settled. Every step of a delivery (claim, run, finish) returns
// a settlement instead of settling the message itself, and one switch
// (settle.go) applies it: done (an ack, not waited for: the record is the
// truth, and a lost ack brings the message back to a delivery that finds
// the record terminal), a retry after a delay, given back at once, dropped
// (term), or kept for the attempt that owns the job. The outcome:
//
//   - a result of up to jobs.inline_result_bytes goes inline into the
//     record; up to contracts.MaxJobResultBytes into the object store, under
//     a name of the attempt's own (ResultName) that the record's
//     result_object gives; anything larger fails the job with
//     result_too_large.
//   - a retryable error (contracts.Error.Retryable) with attempts left puts
//     the record back to queued with that error and naks the message with
//     the delay jobs.backoff[attempt-1] (the last delay repeats).
//   - any other error fails the job at once (seal_invalid, unknown_tool,
//     forbidden, upstream_unauthorized, invalid_request, ...).
//
// # Delivery guarantees
//
// A job's upstream call runs at least once: when the worker running it dies
// (or loses NATS for longer than the ack wait), the job runs again on
// another worker, so the upstream may see the call twice. Its recorded
// result is written once: only the attempt that owns the running record can
// write an outcome, and a terminal record is never changed by a worker.
//
// # Capacity and shutdown
//
// Jobs take the same per-server and process-wide call slots as synchronous
// calls. A worker asks the consumer for as many jobs as it has free slots
// (at least one, at most 64 in one pull request) and starts them at once; a
// job that finds no free slot (synchronous calls took it meanwhile) waits,
// heart-beaten, until one frees. So a worker at its limit holds at most one
// job it cannot start yet, leaves the others in the stream for workers with
// free slots, and never drops or naks one for lack of capacity.
//
// Stop is two-phase: it stops taking jobs, waits for running jobs until its
// context ends, then cancels those left, puts their records back to queued
// and naks their messages so that another worker takes them at once.
//
// # Logs
//
// One line per delivery with job_id, key_id, server, tool, attempt,
// status, duration_ms and token_fp (never the token), plus code and reason
// for failures. Job records never hold a token.
package jobs
