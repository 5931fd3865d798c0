// Package gateway assembles the ingress: the gateway keys, the front-door
// policy, the dispatcher, the tool-list catalog, the async job store, the
// MCP endpoint and the HTTP router, with metrics and tracing. Assemble is
// the one place the ingress is wired: main.go, dev mode and every test
// harness build it so, and differ only in the configuration, the NATS
// connection and the options they pass. Listen and NewServer are the
// listener and HTTP server the ingress binary serves it with (Go's own
// HTTP errors in the JSON shape, every timeout set).
package gateway
