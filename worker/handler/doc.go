// Package handler runs one synchronous toolbus request: a tools/call, a
// tools/list or a relayed MCP request (contracts.RPCRequest: ping,
// resources, prompts, completion). Each kind is an Op in one table (Ops):
// its subject, its message, how it runs and its reply.
//
// The pool decodes a request once (Op.Decode: the message and, when it does
// not validate, why), hands it to Handle, and encodes the reply once
// (Request.Encode) from what Handle returns: the reply's payload or a
// classified *contracts.Error. Requests and replies are wire format v2
// (contracts/wire.go): only the header is decoded and encoded; the
// arguments or params arrive as the message body and go upstream as they
// are, and the upstream's result goes back as the reply's body. Nothing
// reads a payload's bytes on the way.
//
// Handle:
//
//  1. A message that does not decode or validate is answered
//     invalid_request, or not at all when it names no usable request_id.
//  2. The request is admitted (package worker/internal/admit, the same
//     admission async jobs pass): its subject, its server, its tool (for a
//     call), its sealed token opened for exactly this request and not
//     replayed, its budget bounded by the server's max_timeout.
//  3. The upstream call runs within that budget; its failure is classified
//     by package upstream. Upstream JSON-RPC errors of a relayed request are
//     classified for its method (a missing resource is not_found, bad
//     params invalid_request).
//
// A panic while handling a request is recovered: the caller gets internal,
// the panic is logged (its type, or the runtime's text, and the stack; never
// a value that may hold what an upstream sent), and the worker keeps
// serving.
//
// # Events and cancellation
//
// A CallRequest with EventsTo has the upstream's progress and log
// notifications published there as contracts.CallEvents while it runs (at
// most maxEventsPerCall; never onto a toolbus subject or a wildcard). Every
// running call is registered by request id until it ends: Cancel (fed by
// the pool from contracts.CancelSubject) cancels its context, which cancels
// the upstream call, and the caller is answered cancelled.
//
// Every request is logged on one line with request_id, key_id, server, tool,
// status, duration_ms and token_fp, and a reason for failures. Nothing of the
// request's bytes and never the token are logged.
package handler
