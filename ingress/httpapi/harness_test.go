package httpapi_test

import (
	"context"
	"net/http"
	"os"
	"testing"

	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/ingress/internal/gatewaytest"
	"github.com/toolbus/toolbus/worker/demoserver"
)

// stdioEnv makes the test binary serve the demo server over stdio, so a
// stdio upstream in these tests is a real child process.
const (
	stdioEnv      = "TOOLBUS_TEST_STDIO_SERVER"
	stdioTokenEnv = "DEMO_TOKEN"
)

func TestMain(m *testing.M) {
	if os.Getenv(stdioEnv) == "1" {
		err := demoserver.ServeStdio(context.Background(), demoserver.Options{StdioAuthEnv: stdioTokenEnv}, os.Stdin, os.Stdout)
		if err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Keys of the test gateway.
const (
	masterKey = gatewaytest.MasterKey
	teamAKey  = gatewaytest.TeamAKey // demo server only; tools demo-echo and demo-whoami
)

// gateway is the whole system in one test (gatewaytest.Start).
type gateway struct{ *gatewaytest.Gateway }

type response = gatewaytest.Response

// startGateway starts gatewaytest's system, with one more server:
//
//	files    stdio (this test binary), token in DEMO_TOKEN
//
// Each change is applied to the configuration before anything starts.
func startGateway(t *testing.T, changes ...func(*config.File)) *gateway {
	t.Helper()
	opts := []gatewaytest.Option{gatewaytest.WithConfig(func(c *config.File) {
		c.MCPServers["files"] = &config.Server{
			Transport: "stdio", Command: os.Args[0], AuthEnv: stdioTokenEnv,
			Env: map[string]string{stdioEnv: "1"},
		}
	})}
	for _, change := range changes {
		opts = append(opts, gatewaytest.WithConfig(change))
	}
	return &gateway{gatewaytest.Start(t, opts...)}
}

func (g *gateway) do(t *testing.T, method, path string, headers map[string]string, body string) *response {
	t.Helper()
	return doURL(t, g.URL, method, path, headers, body)
}

func doURL(t *testing.T, base, method, path string, headers map[string]string, body string) *response {
	t.Helper()
	return gatewaytest.Do(t, method, base+path, headers, body)
}

// call posts {"name", "arguments"} to /mcp/tools/call with the master key
// and the given user token.
func (g *gateway) call(t *testing.T, token, name, args string) *response {
	t.Helper()
	return g.do(t, http.MethodPost, "/mcp/tools/call", gatewaytest.Headers(masterKey, token), `{"name":"`+name+`","arguments":`+args+`}`)
}
