// Package pool runs a worker process's consumers: for every server it
// serves, it subscribes to contracts.CallSubject and contracts.ListSubject in
// the queue group contracts.WorkerQueueGroup (so each request reaches exactly
// one worker), and contracts.RPCSubject likewise (the MCP endpoint's relayed
// resources, prompts, completion and ping, in the same call slots), it
// listens on contracts.AllCancelsSubject (no queue group) to cancel the
// synchronous calls it runs, it runs the server's async jobs from JetStream (package jobs;
// WithoutJobs turns that off), and it answers contracts.PingSubject with the
// servers it serves.
//
// # The worker service
//
// The call, list, rpc and ping subscriptions are the endpoints of a NATS
// micro service, ServiceName ("toolbus-worker"), one instance per worker:
// `nats micro ls|info|stats toolbus-worker` list the workers, their
// endpoints (call_<server>, list_<server>, rpc_<server> in the queue group
// contracts.WorkerQueueGroup, ping in none) and counters, with the
// worker's own data per endpoint (EndpointStats: slots, running, waiting,
// overloaded, circuit breaker). The ingress reads the same stats for
// GET /admin/workers. WithServiceConn gives the service a connection of its
// own, so that Stop knows exactly when it has received its last request.
//
// # Concurrency
//
// A process-wide limit (worker.max_concurrency) and a per-server limit (the
// server's max_concurrency) bound the calls running at once. NATS runs a
// subscription's callbacks one at a time, so a callback never blocks: it
// hands the request to a goroutine holding a slot in both limits, or, when
// they are full, to one of a bounded number of goroutines waiting for a slot
// (by default as many as the worker's slots for the server, each for at
// most DefaultQueueWait and half the request's budget, which it then runs
// with what is left; see WithQueue). When the wait queue is full too, or the
// wait ends without a slot, it replies overloaded (retryable): an overloaded
// answer always means the request reached no MCP server, so the ingress may
// send it again. Nothing queues without bound. Async jobs take the same
// slots; they wait in JetStream, not here: a job is taken from the stream
// only when it can start.
//
// # One request, one pass
//
// The ops (tools/call, tools/list, the relayed requests) come from one
// table (handler.Ops). A request's message is decoded once, by whoever
// first needs it: the goroutine that runs it (a queued one reads its budget
// from it), or the callback that refuses it (overloaded, circuit open), so
// that even a refusal answers the request id. The handler returns the
// result and a classified error; the pool encodes the reply once, and
// feeds the circuit breaker the error's code. A handler that panics
// answers internal; the worker keeps serving.
//
// # Failing upstreams
//
// Each server has a circuit breaker (worker.breaker, WithBreaker): it opens
// after DefaultBreakerFailures upstream failures with no success in between,
// within DefaultBreakerWindow, from DefaultBreakerMinCallers distinct
// gateway keys. Only the upstream's own failures count (outcomeOf): not a
// timeout shorter than the server's own, not a caller's cancellation, not a
// request the server could not parse - one key cannot open a circuit every
// key shares. While it is open, calls and lists of that server are answered
// upstream_error ("circuit open") at once, take no slot and do not reach the
// server; after the cooldown one probe call decides.
// A dead or hanging server thus costs its callers a round trip, and the
// other servers nothing: their slots are their own.
//
// # Lifecycle
//
// Start registers the service and returns once the server has registered
// its subscriptions; the jobs infrastructure and consumers are set up in the
// background (JobsReady). Stop is two-phase: it stops the service (its
// endpoints drain: NATS routes new requests to the other workers of the
// queue group, and pings stop counting this worker), waits until the
// requests already delivered are handed on, and stops taking jobs; then it
// waits for running calls and jobs up to worker.drain_timeout, cancels those
// left (a cancelled job goes back to the queue for another worker), and
// closes the cancel subscription and the upstream clients. A rolling restart
// (SIGTERM one worker at a time) thus fails no call. Every goroutine the
// pool starts ends before Stop returns.
package pool
