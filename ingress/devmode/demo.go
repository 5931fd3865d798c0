package devmode

import (
	"context"

	"github.com/toolbus/toolbus/worker/demoserver"
)

// The demo MCP server, for the ingress's tests: the test kit
// (ingress/internal/gatewaytest) starts more demo upstreams through
// devmode, the one ingress package that may import worker packages.
type (
	// Demo is a running demo MCP server; its Recorder shows the HTTP
	// requests it received, headers included.
	Demo = demoserver.Running
	// DemoOptions configure a demo server (a required token, a call
	// counter, ...).
	DemoOptions = demoserver.Options
	// DemoCalls counts a demo server's tool calls.
	DemoCalls = demoserver.Calls
)

// Transports a demo server speaks.
const (
	DemoHTTP = demoserver.TransportHTTP
	DemoSSE  = demoserver.TransportSSE
)

// StartDemo starts a demo MCP server on 127.0.0.1 over transport (DemoHTTP
// or DemoSSE) until ctx ends or it is closed.
func StartDemo(ctx context.Context, o DemoOptions, transport string) (*Demo, error) {
	return demoserver.Start(ctx, o, transport)
}
