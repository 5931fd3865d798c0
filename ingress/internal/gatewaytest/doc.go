// Package gatewaytest is the ingress's test kit: the whole system started in
// one test - the dev environment (embedded NATS with JetStream, a worker
// pool, the demo MCP server, through ingress/devmode), more demo upstreams,
// and the ingress built by gateway.Assemble behind a real HTTP server on
// loopback - with the HTTP and bus helpers the ingress's tests share. It
// reaches worker code only through ingress/devmode. Only tests import it.
package gatewaytest
