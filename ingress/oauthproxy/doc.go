// Package oauthproxy lets standard MCP clients complete the OAuth flow of
// an upstream MCP server through the gateway (docs/oauth.md). For every
// server with auth_type oauth2 used interactively (no client_credentials
// flow) it serves the RFC 9728 metadata of /<server>/mcp and the RFC 8414
// metadata of its own authorization-server proxy, and forwards
// registration (RFC 7591), authorization and token requests to the
// upstream's authorization server, discovered from the upstream's own
// metadata or configured, rewriting the RFC 8707 resource indicator so
// that the token issued is valid at the upstream. The token the client then
// sends to /<server>/mcp is passed through as any caller credential.
//
// It keeps no flow state: what a later step needs travels sealed (AES-GCM)
// in the client_id, the state and the code, under a key every replica
// derives alike, so any replica answers any step. Discovered metadata is
// cached per configured server (bounded by the configuration), refreshed
// after five minutes; every outbound request is bounded and follows no
// redirect.
package oauthproxy
