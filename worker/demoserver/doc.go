// Package demoserver is a small upstream MCP server for demos and tests.
//
// It is the upstream that `go run ./ingress --dev` talks to, and the real
// mcp-go server that tests across the repository call through the gateway.
// It serves five tools:
//
//   - echo {"text": string}: returns the text as its only text content
//     (after Options.Delay, if set).
//   - whoami: returns the Authorization header of the HTTP request the call
//     arrived on, or for stdio the value of the environment variable named by
//     Options.StdioAuthEnv; also as structuredContent {"authorization": ...}.
//   - slow {"ms": number}: sleeps; when the request carries a progress
//     token it sends notifications/progress 0, 1, 2, 3 (total 4), one before
//     each quarter of the sleep, each followed by a log message
//     (notifications/message, level info, "slow: step N of 4"). It stops
//     early with an error when the call is cancelled or the server closes.
//   - fail: returns isError=true with the text "demo failure".
//   - big {"bytes": number}: returns one text content of that many 'x'
//     bytes (at most MaxBigBytes, 16 MiB), for result size tests.
//
// Beyond tools, so that a whole server can be tested through a gateway: the
// text resource demo://readme (ReadmeText), the resource template
// demo://echo/{text} (reads as its text), the prompt greet {"name"} ("Hello,
// <name>!"), and completion/complete for greet's name (CompletionNames).
//
// Transports: "http" (streamable HTTP at /mcp), "sse" (legacy SSE at /sse
// with messages posted to /message) and "stdio". Every HTTP request is
// recorded by a Recorder (method, path and a copy of its headers) before
// anything else happens, so tests can assert which credentials reached the
// upstream and which headers did not. With Options.RequireToken every HTTP
// request whose Authorization header is not exactly that value is answered
// 401 with a WWW-Authenticate challenge pointing at
// /.well-known/oauth-protected-resource.
//
// Start runs a server on 127.0.0.1:0 for tests; Main is the
// `worker demo-server` command line. The package has no global state: each
// server owns its listener, goroutines and recorder, all stopped by Close or
// by the end of the context given to Start.
//
// One caveat from mcp-go: its stdio transport keeps a single package-level
// session, so two ServeStdio calls must not run at the same time in one
// process.
package demoserver
