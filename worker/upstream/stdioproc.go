package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/rs/zerolog"
)

// Stopping a stdio server (stdioTransport.Close): its stdin is closed, then
// it has stdioStopGrace to exit, then stdioTermGrace after a SIGTERM to its
// process group, then the group is killed. What it started and left behind
// (the rest of its group) then gets a SIGTERM, and stdioTermGrace later a
// SIGKILL. Close returns within about the sum of these with stdioWaitDelay.
const (
	stdioStopGrace = 2 * time.Second
	stdioTermGrace = time.Second
)

// stdioTransport is the transport of a stdio MCP server. toolbus runs the
// server's process itself and hands mcp-go's stdio transport the process's
// pipes (transport.NewIO), with its output read through a lineLimit: given
// the command, mcp-go would read each line of the output whole, however
// long, while a line here is never longer than max_result_bytes.
//
// A line over the limit is a message toolbus will not read. The call whose
// answer it is fails result_too_large (so do all calls in flight on the
// process when the line does not show whose answer it is, see responseID),
// the rest of the line is not read, and the process is stopped: its output
// can no longer be followed message by message. (Skipping the rest of the
// line instead would keep the process, but mcp-go's reader ends at its
// first read error, and resuming after a line it has half read would mean
// framing the lines here, a second copy of each message.) The pool takes it
// out at once (onEnd) and the next call starts a new one. A process that
// exits on its own is taken out the same way when it exits; calls reading
// its last answers finish first.
//
// The process lives until Close (or the pool's context, which kills it): it
// is reaped by a goroutine that waits for it from its start, so it never
// lingers as a zombie. Its stderr goes to the log line by line (stderrLog).
type stdioTransport struct {
	command string
	args    []string
	env     []string
	max     int64 // max_result_bytes; 0: lines are not bounded
	stderr  io.Writer
	log     zerolog.Logger
	libLog  *slog.Logger
	// onEnd is called once, off any lock, when the process exits or its
	// output has been given up.
	onEnd func()

	mu     sync.Mutex // Start and Close
	closed bool
	cmd    *exec.Cmd
	stdout *os.File      // the read end of the process's stdout
	exited chan struct{} // closed once the process has been reaped

	io      atomic.Pointer[transport.Stdio] // set by Start
	ended   sync.Once
	pending pendingLimits
}

func newStdioTransport(command string, args, env []string, max int64, stderr io.Writer, log zerolog.Logger, libLog *slog.Logger, onEnd func()) *stdioTransport {
	return &stdioTransport{command: command, args: args, env: env, max: max, stderr: stderr, log: log, libLog: libLog, onEnd: onEnd}
}

// Start runs the process. It runs on ctx, the pool's context: when that
// ends, the process is killed.
func (t *stdioTransport) Start(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return transport.ErrTransportClosed
	}
	if t.io.Load() != nil {
		return nil
	}
	// Pipes of our own (not cmd.StdoutPipe, which Wait closes): the process
	// is reaped as soon as it exits while what it wrote is still read.
	inR, inW, err := os.Pipe()
	if err != nil {
		return err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return err
	}
	cmd := exec.CommandContext(ctx, t.command, t.args...)
	cmd.Env = t.env
	cmd.Stdin = inR
	cmd.Stdout = outW
	cmd.Stderr = t.stderr
	cmd.WaitDelay = stdioWaitDelay
	ownGroup(cmd)
	err = cmd.Start()
	// The process has its own copies of its ends.
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return err
	}
	t.cmd, t.stdout, t.exited = cmd, outR, make(chan struct{})
	go t.wait()

	var out io.Reader = outR
	if t.max > 0 {
		out = &lineLimit{r: outR, max: t.max, over: t.overLimit}
	}
	s := transport.NewIO(out, inW, nil)
	transport.WithCommandLogger(t.libLog)(s)
	if err := s.Start(ctx); err != nil { // starts reading; cannot fail with no command
		_ = s.Close()
		t.kill()
		return err
	}
	t.io.Store(s)
	return nil
}

// wait reaps the process when it exits.
func (t *stdioTransport) wait() {
	err := t.cmd.Wait()
	close(t.exited)
	t.mu.Lock()
	closed := t.closed
	t.mu.Unlock()
	if !closed {
		status := "exit status 0"
		if err != nil {
			status = err.Error() // "exit status 1", "signal: killed": no output
		}
		t.log.Warn().Str("status", status).Msg("stdio server exited")
	}
	t.end()
}

// end tells the pool, once, that the process is no longer usable.
func (t *stdioTransport) end() {
	t.ended.Do(func() {
		if t.onEnd != nil {
			t.onEnd()
		}
	})
}

// overLimit gives up the process's output at a line longer than t.max
// whose first bytes are head. It runs on mcp-go's reader, before the
// reader ends.
func (t *stdioTransport) overLimit(head []byte) {
	id, ok := responseID(head)
	t.pending.exceeded(id, ok)
	t.log.Warn().Int64("max_result_bytes", t.max).Msg("a message of the stdio server exceeds max_result_bytes: process stopped")
	t.end()
	// The process gets EPIPE (or SIGPIPE) on its next write instead of
	// blocking on a pipe no one reads; Close kills it if it does not exit.
	_ = t.stdout.Close()
}

// kill stops the process and its group (see stdioStopGrace): stdin is
// closed, then SIGTERM, then SIGKILL, each after a grace period; it
// returns once the process has been reaped and what remains of its group
// has been signalled.
func (t *stdioTransport) kill() {
	if !t.waitExit(stdioStopGrace) {
		_ = signalGroup(t.cmd, syscall.SIGTERM)
		if !t.waitExit(stdioTermGrace) {
			_ = signalGroup(t.cmd, syscall.SIGKILL)
			<-t.exited // Wait returns within stdioWaitDelay of the exit
		}
	}
	// The server is gone; processes it started may not be.
	if !groupLeft(t.cmd) {
		return
	}
	_ = signalGroup(t.cmd, syscall.SIGTERM)
	deadline := time.Now().Add(stdioTermGrace)
	for groupLeft(t.cmd) {
		if time.Now().After(deadline) {
			_ = signalGroup(t.cmd, syscall.SIGKILL)
			return
		}
		time.Sleep(stdioGroupPoll)
	}
}

// stdioGroupPoll is how often kill looks whether the rest of a stopped
// server's group has exited (no process can wait for another's children).
const stdioGroupPoll = 20 * time.Millisecond

// waitExit waits up to d for the process to exit (and be reaped).
func (t *stdioTransport) waitExit(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-t.exited:
		return true
	case <-timer.C:
		return false
	}
}

// Close ends the calls in flight (they fail), closes the process's stdin
// (its cue to exit) and stops the process (kill). Safe to call more than
// once, and concurrently with Start.
func (t *stdioTransport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	s := t.io.Load()
	t.mu.Unlock()
	if s == nil {
		return nil
	}
	err := s.Close() // closes stdin
	// Nothing the process writes from now on is read: a process blocked
	// writing gets EPIPE rather than staying blocked, and mcp-go's reader
	// ends even when a child of the process holds the pipe open.
	_ = t.stdout.Close()
	t.kill()
	return err
}

// SendRequest sends req and waits for its answer. The result limit of ctx
// (its scope's) is the one a line over max_result_bytes marks when it
// is this request's answer.
func (t *stdioTransport) SendRequest(ctx context.Context, req transport.JSONRPCRequest) (*transport.JSONRPCResponse, error) {
	s := t.io.Load()
	if s == nil {
		return nil, transport.ErrTransportClosed
	}
	if lim := scopeOf(ctx).lim; lim != nil && t.max > 0 {
		defer t.pending.add(req.ID.String(), lim)()
	}
	return s.SendRequest(ctx, req)
}

func (t *stdioTransport) SendNotification(ctx context.Context, n mcp.JSONRPCNotification) error {
	s := t.io.Load()
	if s == nil {
		return transport.ErrTransportClosed
	}
	return s.SendNotification(ctx, n)
}

// SetNotificationHandler and SetRequestHandler take effect after Start,
// where mcp-go's client calls them.
func (t *stdioTransport) SetNotificationHandler(h func(mcp.JSONRPCNotification)) {
	if s := t.io.Load(); s != nil {
		s.SetNotificationHandler(h)
	}
}

func (t *stdioTransport) SetRequestHandler(h transport.RequestHandler) {
	if s := t.io.Load(); s != nil {
		s.SetRequestHandler(h)
	}
}

func (t *stdioTransport) GetSessionId() string { return "" }

var _ transport.BidirectionalInterface = (*stdioTransport)(nil)

// pendingLimits are the result limits of the requests in flight, by
// JSON-RPC id (mcp.RequestId.String).
type pendingLimits struct {
	mu sync.Mutex
	m  map[string]*resultLimit
}

// add records lim for id; the returned function removes it.
func (p *pendingLimits) add(id string, lim *resultLimit) func() {
	p.mu.Lock()
	if p.m == nil {
		p.m = make(map[string]*resultLimit)
	}
	p.m[id] = lim
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		delete(p.m, id)
		p.mu.Unlock()
	}
}

// exceeded marks the limit of the request id (known) or, when the line
// over the limit did not show whose answer it is, of every request in
// flight.
func (p *pendingLimits) exceeded(id string, known bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, lim := range p.m {
		if !known || k == id {
			lim.hit.Store(true)
		}
	}
}

// lineHeadBytes is how much of each line lineLimit keeps to tell whose
// answer a line over the limit is.
const lineHeadBytes = 512

// lineLimit reads a stdio server's output - one JSON-RPC message a line -
// for mcp-go, and ends it once a line is longer than max bytes (its newline
// not counted), as limitedBody ends an HTTP body: the complete lines before
// it are delivered, then io.EOF, which ends mcp-go's reader without an
// error log of its own (mcp-go drops the unfinished line, of which it holds
// at most max bytes: those read before the line went over). over is called
// first with the line's first bytes.
type lineLimit struct {
	r    io.Reader
	max  int64
	over func(head []byte)

	n    int64  // bytes of the current line so far
	head []byte // its first lineHeadBytes bytes
	done bool
}

func (l *lineLimit) Read(p []byte) (int, error) {
	if l.done {
		return 0, io.EOF
	}
	n, err := l.r.Read(p)
	data := p[:n]
	for off := 0; off < len(data); {
		seg := data[off:]
		nl := bytes.IndexByte(seg, '\n')
		if nl >= 0 {
			seg = seg[:nl]
		}
		if room := lineHeadBytes - len(l.head); room > 0 {
			l.head = append(l.head, seg[:min(room, len(seg))]...)
		}
		l.n += int64(len(seg))
		if l.n > l.max {
			l.done = true
			l.over(l.head)
			l.head = nil
			// The lines before the long one, if it began in this read:
			// nothing more of it is delivered, and the rest is never read.
			if off == 0 {
				return 0, io.EOF
			}
			return off, nil
		}
		if nl < 0 {
			break
		}
		l.n = 0
		l.head = l.head[:0]
		off += nl + 1
	}
	return n, err
}

// responseID tells whose answer a JSON-RPC message is from its first bytes
// head: the key (mcp.RequestId.String) of its id, and whether head shows
// one. A message with a method is not an answer (a request or a
// notification of the server's); an id after the result, or after more
// than head holds, is not known. A truncated head is expected.
func responseID(head []byte) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(head))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "", false
	}
	var id string
	var known bool
	for {
		tok, err := dec.Token()
		key, isKey := tok.(string)
		if err != nil || !isKey {
			return id, known
		}
		switch key {
		case "method":
			return "", false
		case "result", "error":
			return id, known
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return id, known
		}
		if key == "id" {
			var rid mcp.RequestId
			if err := json.Unmarshal(v, &rid); err != nil {
				return "", false
			}
			id, known = rid.String(), true
		}
	}
}
