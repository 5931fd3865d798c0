package demoserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// Server identity reported to clients.
const (
	ServerName    = "toolbus-demo"
	ServerVersion = "0.1.0"
)

// Tool names.
const (
	ToolEcho   = "echo"
	ToolWhoami = "whoami"
	ToolSlow   = "slow"
	ToolFail   = "fail"
	ToolBig    = "big"
)

// MaxBigBytes bounds the big tool's result.
const MaxBigBytes = 16 << 20

// FailText is the text of the fail tool's error result.
const FailText = "demo failure"

// DefaultMaxBodyBytes bounds the body of every HTTP request.
const DefaultMaxBodyBytes = 4 << 20

// maxSlow caps the slow tool so a typo cannot park a handler for hours.
const maxSlow = 10 * time.Minute

// progressSteps is how many progress notifications slow sends.
const progressSteps = 4

// ErrClosed is returned by a tool call interrupted because its server closed.
var ErrClosed = errors.New("demoserver: server closed")

// Options configures a demo server. The zero value is ready to use.
type Options struct {
	// Listen is the address Start and Main listen on; Start defaults to
	// 127.0.0.1:0, Main to 127.0.0.1:3001.
	Listen string
	// RequireToken, when set, answers 401 to every HTTP request whose
	// Authorization header is not exactly this value (for example
	// "Bearer s3cret"). It does not apply to stdio.
	RequireToken string
	// Delay is waited before echo answers (for timeout tests).
	Delay time.Duration
	// StdioAuthEnv names the environment variable whose value whoami returns
	// over stdio. It is read once, when ServeStdio starts.
	StdioAuthEnv string
	// Recorder receives every HTTP request; NewHandler and Start create one
	// when nil.
	Recorder *Recorder
	// Logger receives mcp-go's and net/http's logs; nil discards them.
	Logger *slog.Logger
	// MaxBodyBytes bounds request bodies; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Calls, when set, counts the tool calls the server runs.
	Calls *Calls
	// Subscriptions, when set, holds the server's resource subscriptions
	// (one server's only).
	Subscriptions *Subscriptions
	// Wrap, when set, wraps the HTTP handler Start serves: a test's fault
	// injection or checks in front of the demo server.
	Wrap func(http.Handler) http.Handler
	// Stateless makes the streamable HTTP server keep no sessions (no
	// Mcp-Session-Id; each request stands alone).
	Stateless bool
}

// Calls counts the tool calls of a demo server: how many ran, how many at
// once, how many were cancelled. Its zero value is ready to use and it is
// safe for concurrent use.
type Calls struct {
	mu    sync.Mutex
	stats CallStats
}

// CallStats is what Calls counted.
type CallStats struct {
	Started    int // tool handlers entered
	Running    int // running now
	MaxRunning int // the most ever running at once
	// Cancelled counts handlers that ended with their context done: the
	// client cancelled the call (or went away).
	Cancelled int
}

// Stats returns the counts so far.
func (c *Calls) Stats() CallStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// count wraps a tool handler so that c counts its calls; a nil c counts nothing.
func (c *Calls) count(h server.ToolHandlerFunc) server.ToolHandlerFunc {
	if c == nil {
		return h
	}
	return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		c.mu.Lock()
		c.stats.Started++
		c.stats.Running++
		c.stats.MaxRunning = max(c.stats.MaxRunning, c.stats.Running)
		c.mu.Unlock()
		defer func() {
			c.mu.Lock()
			c.stats.Running--
			if ctx.Err() != nil {
				c.stats.Cancelled++
			}
			c.mu.Unlock()
		}()
		return h(ctx, req)
	}
}

func (o Options) logger() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (o Options) maxBodyBytes() int64 {
	if o.MaxBodyBytes > 0 {
		return o.MaxBodyBytes
	}
	return DefaultMaxBodyBytes
}

// toolEnv is what the tool handlers need beyond Options.
type toolEnv struct {
	// stop, when closed, interrupts waiting handlers (the server is closing).
	// SSE runs handlers on contexts detached from the HTTP request, so a
	// context alone cannot stop them.
	stop <-chan struct{}
	// stdio is true when the server serves stdio; whoami then returns
	// stdioAuth instead of the (absent) Authorization header.
	stdio     bool
	stdioAuth string
}

// New returns an MCP server with the demo tools. Its whoami tool reports the
// Authorization header of the HTTP request; use ServeStdio for stdio.
func New(opts Options) *server.MCPServer {
	return newServer(opts, toolEnv{})
}

func newServer(opts Options, env toolEnv) *server.MCPServer {
	subs := opts.Subscriptions
	if subs == nil {
		subs = &Subscriptions{}
	}
	s := server.NewMCPServer(ServerName, ServerVersion,
		server.WithToolCapabilities(false),
		server.WithResourceCapabilities(true, false),
		server.WithHooks(subs.hooks()),
		server.WithPromptCapabilities(false),
		server.WithCompletions(),
		server.WithPromptCompletionProvider(completions{}),
		server.WithLogging(),
		server.WithRecovery(),
		server.WithElicitation(),
	)
	s.EnableSampling()
	addResourcesAndPrompts(s)
	t := tools{opts: opts, env: env, srv: s}
	s.AddTool(mcp.NewTool(ToolEcho,
		mcp.WithDescription("Returns the given text."),
		mcp.WithString("text", mcp.Required(), mcp.Description("Text to return.")),
	), opts.Calls.count(t.echo))
	s.AddTool(mcp.NewTool(ToolWhoami,
		mcp.WithDescription("Returns the Authorization header the call arrived with."),
	), opts.Calls.count(t.whoami))
	s.AddTool(mcp.NewTool(ToolSlow,
		mcp.WithDescription("Sleeps for ms milliseconds, reporting progress (and a log message per step) when asked for progress."),
		mcp.WithNumber("ms", mcp.Required(), mcp.Description("Milliseconds to sleep.")),
	), opts.Calls.count(t.slow))
	s.AddTool(mcp.NewTool(ToolFail,
		mcp.WithDescription("Always returns a tool error."),
	), opts.Calls.count(t.fail))
	s.AddTool(mcp.NewTool(ToolBig,
		mcp.WithDescription("Returns one text content of the given number of 'x' bytes (for result size tests)."),
		mcp.WithNumber("bytes", mcp.Required(), mcp.Description("Bytes of text, at most 16 MiB.")),
	), opts.Calls.count(t.big))
	addAskTools(s, t)
	subs.srv = s
	s.AddTool(mcp.NewTool(ToolTouch,
		mcp.WithDescription("Announces that a resource changed: its subscribers get notifications/resources/updated."),
		mcp.WithString("uri", mcp.Required(), mcp.Description("The resource's URI.")),
	), opts.Calls.count(subs.touch))
	return s
}

type tools struct {
	opts Options
	env  toolEnv
	srv  *server.MCPServer
}

func (t tools) echo(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	text, err := req.RequireString("text")
	if err != nil {
		return mcp.NewToolResultError(err.Error()), nil
	}
	if err := t.wait(ctx, t.opts.Delay); err != nil {
		return nil, fmt.Errorf("echo: %w", err)
	}
	return mcp.NewToolResultText(text), nil
}

func (t tools) whoami(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	auth := req.Header.Get("Authorization")
	if t.env.stdio {
		auth = t.env.stdioAuth
	}
	return mcp.NewToolResultStructured(map[string]any{"authorization": auth}, auth), nil
}

func (t tools) slow(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	ms, err := req.RequireFloat("ms")
	if err != nil {
		return mcp.NewToolResultError(err.Error()), nil
	}
	d := min(max(time.Duration(ms*float64(time.Millisecond)), 0), maxSlow)

	var token mcp.ProgressToken
	if req.Params.Meta != nil {
		token = req.Params.Meta.ProgressToken
	}
	if token == nil {
		if err := t.wait(ctx, d); err != nil {
			return nil, fmt.Errorf("slow: %w", err)
		}
	} else {
		// Progress 0..progressSteps-1 is sent before each step rather than
		// after it: mcp-go's streamable HTTP transport can drop a
		// notification sent just before the handler returns (its forwarder
		// goroutine loses the race with the final drain), so the last one is
		// followed by a step's worth of sleep.
		for i := range progressSteps {
			// Best effort: a full notification queue or a client that is
			// gone must not fail the call.
			_ = t.srv.SendNotificationToClient(ctx, string(mcp.MethodNotificationProgress), map[string]any{
				"progressToken": token,
				"progress":      i,
				"total":         progressSteps,
				"message":       fmt.Sprintf("step %d of %d", i+1, progressSteps),
			})
			// And a log message per step, for log relay tests.
			_ = t.srv.SendNotificationToClient(ctx, string(mcp.MethodNotificationMessage), map[string]any{
				"level":  "info",
				"logger": ServerName,
				"data":   fmt.Sprintf("slow: step %d of %d", i+1, progressSteps),
			})
			if err := t.wait(ctx, d/progressSteps); err != nil {
				return nil, fmt.Errorf("slow: %w", err)
			}
		}
	}
	return mcp.NewToolResultText(fmt.Sprintf("slept %s", d)), nil
}

func (t tools) big(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	n, err := req.RequireFloat("bytes")
	if err != nil {
		return mcp.NewToolResultError(err.Error()), nil
	}
	if n < 0 || n > MaxBigBytes {
		return mcp.NewToolResultError(fmt.Sprintf("bytes must be 0 to %d", MaxBigBytes)), nil
	}
	return mcp.NewToolResultText(strings.Repeat("x", int(n))), nil
}

func (t tools) fail(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	return mcp.NewToolResultError(FailText), nil
}

// wait sleeps for d, returning early with an error when ctx is done or the
// server closes.
func (t tools) wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.env.stop:
		return ErrClosed
	}
}
