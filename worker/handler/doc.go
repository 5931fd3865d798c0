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
// Every request is logged on one line with request_id, key_id, server, tool,
// status, duration_ms and token_fp, and a reason for failures. Nothing of the
// request's bytes and never the token are logged.
package handler
