package upstream_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/toolbus/toolbus/worker/demoserver"
)

// Environment of the test binary re-executed as a stdio MCP server.
const (
	envStdioServer  = "TOOLBUS_TEST_STDIO_SERVER"
	envStdioAuthEnv = "TOOLBUS_TEST_STDIO_AUTH_ENV"
)

func TestMain(m *testing.M) {
	if v := os.Getenv(envStdioSleeper); v != "" {
		sleep(v == "stubborn") // stdioproc_test.go
	}
	if os.Getenv(envStdioProxy) == "1" {
		os.Exit(serveStdioProxy()) // stdioproc_test.go
	}
	if os.Getenv(envStdioServer) == "1" {
		opts := demoserver.Options{StdioAuthEnv: os.Getenv(envStdioAuthEnv)}
		if err := demoserver.ServeStdio(context.Background(), opts, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "stdio demo server:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
