package demoserver

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"

	"github.com/mark3labs/mcp-go/server"
)

// ServeStdio serves the demo tools as newline-delimited JSON-RPC, reading in
// and writing out, until in ends (nil) or ctx is done (nil). whoami returns
// the value of the environment variable named by opts.StdioAuthEnv, read once
// here.
//
// mcp-go reads in on a goroutine of its own; when ctx ends first, that
// goroutine stays blocked until in yields or is closed. Callers that own in
// should close it after ServeStdio returns. mcp-go's stdio session is
// package-level state: do not run two ServeStdio calls at once in a process.
func ServeStdio(ctx context.Context, opts Options, in io.Reader, out io.Writer) error {
	env := toolEnv{stdio: true}
	if opts.StdioAuthEnv != "" {
		env.stdioAuth = os.Getenv(opts.StdioAuthEnv)
	}
	s := server.NewStdioServer(newServer(opts, env))
	s.SetErrorLogger(slog.NewLogLogger(opts.logger().Handler(), slog.LevelError))
	err := s.Listen(ctx, in, out)
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return nil
	}
	return err
}
