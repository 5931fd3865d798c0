// Package pool runs a worker process's consumers: for every server it
// serves, it subscribes to contracts.CallSubject and contracts.ListSubject in
// the queue group contracts.WorkerQueueGroup (so each request reaches exactly
// one worker), and it answers contracts.PingSubject with the servers it
// serves.
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
// without bound.
//
// # Lifecycle
//
// Start subscribes and returns once the server has registered the
// subscriptions. Stop is two-phase: it drains the subscriptions (no new
// requests reach this worker; requests already received still run), then
// waits for running calls up to worker.drain_timeout, cancels those left,
// and closes the upstream clients. Every goroutine the pool starts ends
// before Stop returns.
package pool
