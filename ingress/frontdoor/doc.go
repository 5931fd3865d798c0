// Package frontdoor is the ingress's one policy for every way a request
// comes in: the REST call and list, async POST /v1/calls and Prefer:
// respond-async, the aggregated /mcp, /<server>/mcp, legacy SSE and MCP
// Tasks. For a request it answers who calls (the gateway key, Caller),
// which server or servers, which tool, with which budget, and which
// credential each server receives (Credential). No door keeps its own copy
// of these rules, so a case is answered with the same code whichever door
// it came through:
//
//	unknown_server  a server_id or /<server>/ that names no configured server
//	forbidden       a server the key may not use; a tool the key's tool list,
//	                or the server's allowed_tools / disallowed_tools, exclude
//	unknown_tool    a name that resolves to no tool
//	ambiguous_tool  a bare name that several servers have
//
// Doors differ only in how they name things. A REST call names a server
// with server_id (its name, alias or LiteLLM server id), or as
// <prefix><sep><tool> (ingress.tool_separator; the prefix is the server's
// alias or name, config.Server.Prefix), or not at all: a bare name is then
// looked up in the tool lists of every server the key may use. On /mcp
// tools are listed, and so called, as <prefix><sep><tool> only; on
// /<server>/mcp the endpoint names the server, and a name is taken with or
// without its prefix. Which servers a request covers is LiteLLM's
// selection (Selection: /mcp/<sel>, /<sel>/mcp, x-mcp-servers,
// x-mcp-access-groups, the REST list's server_id), decided by
// Policy.Servers only.
// A tool the key may not use is not listed by any door.
//
// Request is the record of one HTTP request at the front door (its id, the
// caller, the server and tool decided, the credential's fingerprint, the
// error code): one typed struct per request, stored once in the Gin
// context, that the access log, metrics and traces read.
package frontdoor
