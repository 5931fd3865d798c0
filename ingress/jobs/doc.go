// Package jobs is the ingress side of async tool calls: it records a job as
// queued, publishes it to the JetStream work-queue stream, and reads, waits
// for, lists and cancels jobs. Workers run them and write every later state.
//
// All state lives in NATS (the jobs stream, the job KV bucket and the result
// object store), so any ingress replica can answer any poll. A job's KV key
// holds its owner (the caller's identity: frontdoor.Caller.Owner): another caller's
// lookup addresses another key and finds nothing, so foreign jobs are
// indistinguishable from missing ones (404, not 403).
//
// One file per verb: submit.go (Submit), get.go (Get, Wait, Result),
// list.go (List), cancel.go (Cancel); store.go holds the Store, its binding
// to the stream and buckets, and the errors every verb shares.
package jobs
