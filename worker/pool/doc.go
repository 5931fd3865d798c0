// Package pool runs a worker process's consumers: for every server it
// serves, it subscribes to contracts.CallSubject and contracts.ListSubject in
// the queue group contracts.WorkerQueueGroup (so each request reaches exactly
// one worker), it runs the server's async jobs from JetStream (package jobs;
// WithoutJobs turns that off), and it answers contracts.PingSubject with the
// servers it serves.
//
// # Concurrency
//
// A process-wide limit (worker.max_concurrency) and a per-server limit (the
// server's max_concurrency) bound the calls running at once. NATS runs a
// subscription's callbacks one at a time, so a callback never blocks: it
// hands the request to a goroutine holding a slot in both limits, or, when
// they are full, to one of a bounded number of goroutines waiting for a slot
// (by default as many as the server's max_concurrency, each for at most
// DefaultQueueWait; see WithQueue). When the wait queue is full too, or the
// wait ends without a slot, it replies overloaded (retryable). Nothing queues
// without bound. Async jobs take the same slots; they wait in JetStream, not
// here: a job is taken from the stream only when it can start.
//
// # Lifecycle
//
// Start subscribes and returns once the server has registered the
// subscriptions; the jobs infrastructure and consumers are set up in the
// background (JobsReady). Stop is two-phase: it drains the subscriptions and
// stops taking jobs (no new work reaches this worker; work already received
// still runs), then waits for running calls and jobs up to
// worker.drain_timeout, cancels those left (a cancelled job goes back to the
// queue for another worker), and closes the upstream clients. Every
// goroutine the pool starts ends before Stop returns.
package pool
