// Package upstream calls upstream MCP servers with mcp-go on behalf of
// users, over streamable HTTP, SSE or stdio.
//
// # Credentials and pooling
//
// A Pool keeps one mcp-go client per (server, user credential). On HTTP and
// SSE the credential is sent as the whole Authorization header value, exactly
// as the user gave it, and only when the server passes credentials through
// (auth: passthrough); auth: none servers never receive one. No other header
// of the user's request is ever sent. A stdio server receives the credential
// in the environment variable named by its auth_env, one process per
// credential; without auth_env, one process serves everyone and receives
// none. Stdio servers inherit the worker's environment minus TOOLBUS_*
// variables (which hold sealing keys), plus their configured env.
//
// Because an upstream session (2025-11-25 Mcp-Session-Id, an SSE stream, a
// stdio process) carries the credential it was created with, a client is
// never shared between credentials; clients are keyed by the SHA-256 of the
// credential (the empty credential is a key of its own). Each server's
// clients are bounded (Options.MaxClients: the least recently used idle one
// is closed to make room, or the call fails with overloaded), closed after
// Options.IdleTTL unused by a reaper the Pool owns, and replaced when the
// upstream ends their session (HTTP 404, retried once), refuses their
// credential, or their transport breaks. Concurrent first uses of one key
// create one client; a failed connection is not kept. Clients live on the
// Pool's own context, never on a request's: requests only bound the
// handshake and the calls.
//
// mcp-go negotiates the stateless 2026-07-28 protocol first and falls back
// to 2025-11-25 sessions; the per-credential pooling holds either way.
//
// # Service credentials
//
// A server with a credential of its own (auth_type api_key, bearer_token,
// basic, authorization, oauth2 client_credentials, aws_sigv4) never receives
// the caller's: the token argument is ignored for it, and its HTTP client
// (one per server, wrapping the shared transport) removes any Authorization
// and sets the server's own on every request - a fixed header, a cached
// OAuth2 token (one token request for any number of concurrent calls,
// bounded by Options.TokenTimeout, refreshed before expiry), or a SigV4
// signature of the request, body included (with aws_role_name, by the
// role's temporary credentials from STS AssumeRole, cached and refreshed
// the same way). static_headers are added where
// the request has no such header. All callers of such a server share its
// clients. A failure to obtain or use the credential is
// upstream_auth_failed; the server's secrets are removed from error
// details.
//
// # Errors
//
// Every failure is an *Error whose Wire field is the contracts error the
// caller receives (see Classify): upstream_unauthorized with the upstream's
// WWW-Authenticate challenge, upstream_timeout, unknown_tool,
// upstream_error, and so on. Wire messages are fixed phrases; Error.Detail,
// for logs only, has the credential removed.
//
// # Progress
//
// A call made WithProgress carries a progress token in its _meta; the MCP
// progress notifications the upstream sends for it are passed to the
// call's callback. A pooled client is shared by the concurrent calls of one
// user, so each client routes notifications by token to its own calls
// only: a notification never reaches another client's (another user's)
// call.
//
// A call made WithLogs receives the upstream's log notifications
// (notifications/message). They name no request, so each reaches every call
// then running on the same pooled client - always the same user's.
//
// # Relay
//
// Relay sends the other MCP requests a gateway relays (contracts.RPCMethods:
// ping, resources, resource templates, prompts, completion) with the same
// pooling and credentials, one page at a time, through mcp-go's typed
// client methods (which add what the negotiated protocol needs).
//
// # HTTP
//
// All HTTP and SSE clients of a Pool share one transport (NewHTTPTransport:
// many idle connections per host, a response header timeout, no overall
// timeout, which would cut SSE streams), wrapped to record the
// WWW-Authenticate header of 401 responses, which mcp-go does not keep.
package upstream
