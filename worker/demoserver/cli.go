package demoserver

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
)

// DefaultListen is the address Main listens on for http and sse.
const DefaultListen = "127.0.0.1:3001"

// Main is the `worker demo-server` command:
//
//	worker demo-server [--transport http|sse|stdio] [--listen 127.0.0.1:3001]
//	    [--auth-env NAME] [--require-token TOKEN] [--delay 0s] [--stateless]
//
// For http and sse it prints one line, "demo MCP server (<transport>)
// listening on <URL>", to stdout and serves until ctx is done. For stdio it
// serves os.Stdin and stdout until stdin ends or ctx is done. args excludes
// the command name. -h returns an error wrapping flag.ErrHelp.
func Main(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("demo-server", flag.ContinueOnError)
	fs.SetOutput(stdout)
	transport := fs.String("transport", TransportHTTP, "transport: http, sse or stdio")
	listen := fs.String("listen", DefaultListen, "address to listen on (http, sse)")
	authEnv := fs.String("auth-env", "", "environment variable whose value whoami returns over stdio")
	requireToken := fs.String("require-token", "", "answer 401 unless the Authorization header is exactly this value (http, sse)")
	delay := fs.Duration("delay", 0, "delay before echo answers")
	stateless := fs.Bool("stateless", false, "keep no sessions: no Mcp-Session-Id (http)")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("demo-server: %w", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("demo-server: unexpected arguments %q", fs.Args())
	}
	opts := Options{
		Listen:       *listen,
		RequireToken: *requireToken,
		Delay:        *delay,
		StdioAuthEnv: *authEnv,
		Stateless:    *stateless,
	}

	switch *transport {
	case TransportStdio:
		return ServeStdio(ctx, opts, os.Stdin, stdout)
	case TransportHTTP, TransportSSE:
	default:
		return fmt.Errorf("demo-server: unknown transport %q (want http, sse or stdio)", *transport)
	}

	run, err := Start(ctx, opts, *transport)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(stdout, "demo MCP server (%s) listening on %s\n", *transport, run.URL); err != nil {
		_ = run.Close(context.WithoutCancel(ctx))
		return err
	}
	<-ctx.Done()
	return run.Close(context.WithoutCancel(ctx))
}
