// Package mcpserver is the gateway as an MCP server: MCP clients (LibreChat,
// Claude Code, Cursor, agents) connect with the gateway key and the user's
// Authorization and reach every tool their key may use, through the queue:
// ingress → NATS → worker → upstream.
//
//	/mcp            streamable HTTP: the tools of every server the key may
//	                use (or that x-mcp-servers / x-mcp-access-groups
//	                select), named <prefix>-<tool> (ingress.tool_separator;
//	                the prefix is the server's alias or name)
//	/mcp/<sel>, /<sel>/mcp
//	                streamable HTTP: the servers LiteLLM's selection <sel>
//	                names (frontdoor.Selection). One server is its own
//	                endpoint: its tools (listed <prefix>-<tool>, or bare
//	                under ingress.per_server_tool_names: bare), resources,
//	                resource templates, prompts, completion and ping,
//	                relayed (contracts.RPCSubject)
//	/sse, /message, /<sel>/sse, /<sel>/message, /mcp/sse, /mcp/sse/messages,
//	/mcp/<sel>/sse, /mcp/<sel>/sse/messages
//	                the legacy HTTP+SSE transport (2024-11-05)
//
// # A stateless server
//
// It is a hand-written JSON-RPC server, not mcp-go's server package: the
// tools are different for every key and user, calls are relayed rather
// than run here, and tasks must outlive any one process. No MCP state lives
// in an ingress beyond one HTTP request, so any replica answers any
// request: Mcp-Session-Id is issued at initialize (128 random bits) but
// never required or looked up; it only scopes request ids. Protocol
// versions 2025-11-25, 2025-06-18, 2025-03-26 and 2024-11-05 are spoken;
// mcp-go's client first probes the stateless 2026-07-28 revision with
// server/discover, gets "method not found", and falls back to initialize.
//
// # Calls, progress, logs, cancellation
//
// A tools/call goes through dispatch.Dispatcher.Call. When the client takes
// an SSE answer, the call names an events subject below the dispatcher's
// inbox (dispatch.OpenEvents), registered for the life of the HTTP request:
// the worker publishes the upstream's progress and log notifications there
// (contracts.CallEvent), and Call hands them to the request's goroutine
// while it waits, which sends them to the client as notifications/progress
// (with the client's progressToken) and notifications/message before the
// result; requests from the upstream to the client arrive the same way
// (clientreq.go). The toolbus request id of a call is derived from the
// caller's identity (key and credentials), the endpoint, the session and the JSON-RPC id,
// so a notifications/cancelled arriving on any replica names the same id and
// is published on contracts.CancelSubject: the worker running the call
// cancels its context, and mcp-go cancels upstream. A client that goes away
// mid-call cancels it the same way (its answer could not be delivered: the
// endpoint does not resume streams).
//
// # Tasks
//
// tools/call with params.task creates a job (package jobs: JetStream and
// KV), owned like a REST async job by the gateway key and the user's
// Authorization; tasks/get, tasks/result (waits until terminal), tasks/list
// and tasks/cancel read and cancel it from NATS, on any replica.
//
// # Errors
//
// Before any MCP processing, the API's middleware refuses a wrong key (401)
// and an oversized body (413) with its JSON error bodies; guard refuses a
// non-loopback Host or Origin on a loopback listener (DNS rebinding, 403).
// An unknown server is 404, a server the key may not use 403. Within MCP:
// malformed messages and unknown methods are JSON-RPC errors; unknown or
// forbidden tools and bad arguments are invalid params (which tool and
// server a key may use, and with which code a case is refused, package
// frontdoor decides, as for every other door); on a per-server
// endpoint an upstream that refuses the user's credential is an HTTP 401
// carrying the upstream's WWW-Authenticate challenge (MCP's authorization
// flow), or a JSON-RPC error once an SSE answer has begun; other failures of
// a tool call (upstream error or timeout, no worker, overloaded, cancelled,
// and on /mcp a refused credential) are tool results with isError set and
// the toolbus error (stable code, retryable) in _meta. The data of every
// JSON-RPC error the gateway produces is the toolbus error.
//
// # Legacy SSE across replicas
//
// The SSE stream lives on one replica; its session id names that replica.
// A POST /message that reaches another replica is answered there, with its
// own request's credentials, and the resulting messages are handed to the
// stream's replica over NATS (a request on a subject below that replica's
// inbox); only JSON-RPC messages cross, never a credential. A session only
// takes messages from the key that opened it.
package mcpserver
