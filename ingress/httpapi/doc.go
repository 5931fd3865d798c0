// Package httpapi is the ingress's HTTP API on Gin: the LiteLLM-compatible
// REST endpoints (/mcp/tools/call, /mcp-rest/tools/call, /mcp/tools/list,
// /mcp-rest/tools/list), health and readiness, and the admin view of the
// worker pool (/admin/workers, for the master key).
//
// The API routes are bounded by the number of requests served at once
// (Options.MaxInFlight): one more is answered 503 overloaded at once, so a
// burst sheds load instead of piling up. Probes and admin routes are not
// bounded, so they answer while the gateway is overloaded.
//
// Every response that is not a success is a JSON error body
//
//	{"error": {"code": "unknown_tool", "message": "...", "retryable": false, ...}}
//
// with a stable code; status.go maps codes to HTTP statuses in one place.
// Which key, server, tool, budget and credential a request gets is decided
// by package frontdoor, the same for the REST API and the MCP endpoint;
// every request's decisions are recorded in its frontdoor.Request, which
// the access log, metrics and traces read.
// Middleware is small, one concern per file, and ordered on purpose in New.
package httpapi
