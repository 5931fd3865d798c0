// Package handler turns one toolbus request message into one reply: it
// checks the request against the subject it arrived on and the worker's
// configuration, opens the sealed user token, calls the upstream MCP server
// through an upstream.Pool within the request's timeout, and encodes the
// contracts response.
//
// Order of checks for a tools/call (tools/list is the same without the tool):
//
//  1. The message decodes and validates (contracts.DecodeCallRequest);
//     otherwise invalid_request, or no reply at all when no request_id can
//     be salvaged.
//  2. The server is the one the subject names: a request whose server field
//     names another server was moved (seal_invalid when it carries a sealed
//     token, invalid_request otherwise).
//  3. The server is configured (unknown_server) and allows the tool
//     (forbidden).
//  4. For auth passthrough servers, the sealed token opens for exactly this
//     request (its binding is rebuilt from the message and its reply
//     subject), is unexpired, and was not seen before by this worker;
//     otherwise seal_invalid. auth none servers never open it.
//  5. The upstream call runs within min(timeout_ms, the server's
//     max_timeout); its failure is classified by package upstream.
//
// HandleRPC does the same for a relayed MCP request (contracts.RPCRequest:
// ping, resources, prompts, completion), whose sealed token is bound to its
// method; there is no tool filter. Upstream JSON-RPC errors are classified
// for the relayed method (a missing resource is not_found, bad params
// invalid_request).
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
