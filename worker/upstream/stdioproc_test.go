package upstream_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/worker/demoserver"
	"github.com/toolbus/toolbus/worker/upstream"
)

// The stdio proxy: this test binary re-executed as the demo stdio server
// behind a filter that answers a few tools of its own.
const (
	envStdioProxy = "TOOLBUS_TEST_STDIO_PROXY"
	// envStdioStubborn makes the proxy ignore the end of its stdin and
	// SIGTERM: only SIGKILL stops it.
	envStdioStubborn = "TOOLBUS_TEST_STDIO_STUBBORN"

	// toolHuge answers one text of arguments.bytes bytes, written in chunks
	// until the reader goes away; with arguments.idLast the id comes after
	// the result.
	toolHuge = "huge"
	// toolExit answers, then the process exits with status 3.
	toolExit = "exit"
	// toolPid answers the process's id.
	toolPid = "pid"
	// toolChild starts a child process that sleeps until it is killed and
	// answers its id; with arguments.stubborn the child ignores SIGTERM.
	toolChild = "child"
	// envStdioSleeper makes this test binary such a child ("stubborn": one
	// that ignores SIGTERM).
	envStdioSleeper = "TOOLBUS_TEST_STDIO_SLEEPER"
	// toolStderr writes a line naming the credential (the variable
	// TOOLBUS_TEST_STDIO_AUTH_ENV names) to stderr, then answers.
	toolStderr = "stderr"
)

// serveStdioProxy runs the proxy on stdin and stdout and returns the
// process's exit status.
func serveStdioProxy() int {
	if os.Getenv(envStdioStubborn) == "1" {
		signal.Ignore(syscall.SIGTERM)
	}
	var mu sync.Mutex // one message at a time on stdout
	out := lockedWriter{mu: &mu, w: os.Stdout}
	demoIn, toDemo := io.Pipe()
	served := make(chan error, 1)
	go func() { served <- demoserver.ServeStdio(context.Background(), demoserver.Options{}, demoIn, out) }()
	in := bufio.NewReader(os.Stdin)
	for {
		line, err := in.ReadBytes('\n')
		if err != nil {
			if os.Getenv(envStdioStubborn) == "1" {
				for {
					time.Sleep(time.Hour) // until killed
				}
			}
			toDemo.Close()
			if err := <-served; err != nil {
				fmt.Fprintln(os.Stderr, "stdio demo server:", err)
				return 1
			}
			return 0
		}
		var msg struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params struct {
				Name      string `json:"name"`
				Arguments struct {
					Bytes    int  `json:"bytes"`
					IDLast   bool `json:"idLast"`
					Stubborn bool `json:"stubborn"`
				} `json:"arguments"`
			} `json:"params"`
		}
		if json.Unmarshal(line, &msg) == nil && msg.Method == "tools/call" {
			text := func(s string) {
				_, _ = fmt.Fprintf(out, `{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":%q}]}}`+"\n", msg.ID, s)
			}
			switch msg.Params.Name {
			case toolHuge:
				mu.Lock()
				err := writeHuge(os.Stdout, msg.ID, msg.Params.Arguments.Bytes, msg.Params.Arguments.IDLast)
				mu.Unlock()
				if err != nil {
					return 2 // the reader went away
				}
				continue
			case toolExit:
				text("bye")
				return 3
			case toolPid:
				text(strconv.Itoa(os.Getpid()))
				continue
			case toolChild:
				child := exec.Command(os.Args[0])
				child.Env = append(os.Environ(), envStdioSleeper+"=plain")
				if msg.Params.Arguments.Stubborn {
					child.Env = append(os.Environ(), envStdioSleeper+"=stubborn")
				}
				if err := child.Start(); err != nil {
					text("start: " + err.Error())
					continue
				}
				go func() { _ = child.Wait() }() // reaped while the proxy lives
				text(strconv.Itoa(child.Process.Pid))
				continue
			case toolStderr:
				fmt.Fprintf(os.Stderr, "starting with credential %s\n", os.Getenv(os.Getenv(envStdioAuthEnv)))
				text("written")
				continue
			}
		}
		if _, err := toDemo.Write(line); err != nil {
			return 1
		}
	}
}

func writeHuge(w io.Writer, id json.RawMessage, size int, idLast bool) error {
	head := fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"`, id)
	tail := `"}]}}` + "\n"
	if idLast {
		head = `{"jsonrpc":"2.0","result":{"content":[{"type":"text","text":"`
		tail = fmt.Sprintf(`"}]},"id":%s}`+"\n", id)
	}
	if _, err := io.WriteString(w, head); err != nil {
		return err
	}
	chunk := bytes.Repeat([]byte("a"), 64<<10)
	for written := 0; written < size; written += len(chunk) {
		if _, err := w.Write(chunk); err != nil {
			return err
		}
	}
	_, err := io.WriteString(w, tail)
	return err
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// proxyServer runs this test binary as the stdio proxy.
func proxyServer(name string, maxResultBytes int64) *config.Server {
	return proxyServerAuth(name, "", maxResultBytes)
}

// proxyServerAuth is proxyServer receiving the caller's credential in the
// variable authEnv.
func proxyServerAuth(name, authEnv string, maxResultBytes int64) *config.Server {
	srv := stdioServer(name, authEnv)
	srv.Env[envStdioProxy] = "1"
	srv.MaxResultBytes = maxResultBytes
	return srv
}

func callText(ctx context.Context, p *upstream.Pool, srv *config.Server, tool, args string) (string, error) {
	raw, err := p.CallTool(ctx, srv, contracts.Token{}, tool, json.RawMessage(args))
	if err != nil {
		return "", err
	}
	var r toolResult
	if err := json.Unmarshal(raw, &r); err != nil || len(r.Content) != 1 {
		return "", fmt.Errorf("result %.200s: %v", raw, err)
	}
	return r.Content[0].Text, nil
}

// processGone reports whether the process pid has been reaped: kill(pid, 0)
// still finds a zombie.
func processGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// closeBounded closes p and fails the test if Close takes over 30 s.
func closeBounded(t *testing.T, p *upstream.Pool) {
	t.Helper()
	closed := make(chan struct{})
	go func() {
		_ = p.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not return")
	}
}

// processEnded reports whether the process pid has exited: gone, or a
// zombie (an orphan's exit is reaped by init, whatever init does).
func processEnded(pid int) bool {
	if processGone(pid) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	// pid (comm) state ...: comm may hold spaces and parentheses.
	rest := stat[bytes.LastIndexByte(stat, ')')+1:]
	return bytes.HasPrefix(bytes.TrimSpace(rest), []byte("Z"))
}

// sleep is this test binary as a stdio server's child: it sleeps until it
// is killed (stubborn: SIGTERM does not stop it).
func sleep(stubborn bool) {
	if stubborn {
		signal.Ignore(syscall.SIGTERM)
	}
	for {
		time.Sleep(time.Hour)
	}
}

// TestPool_StdioMaxResultBytes: a stdio server's 64 MiB answer, one line,
// is read no further than max_result_bytes (1 MiB): the call fails
// result_too_large without the worker holding the answer (the bytes
// allocated while it is read stay far below its size), the process is
// stopped and reaped, and the next call runs on a new one.
func TestPool_StdioMaxResultBytes(t *testing.T) {
	// Not parallel: the allocation count is the whole process's.
	const huge = 64 << 20
	for _, idLast := range []bool{false, true} {
		t.Run(fmt.Sprintf("idLast=%v", idLast), func(t *testing.T) {
			ctx := contractstest.Ctx(t)
			p := newPool(t, upstream.Options{}, nil)
			srv := proxyServer("big", 1<<20)
			pid, err := callText(ctx, p, srv, toolPid, "")
			if err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err = p.CallTool(ctx, srv, contracts.Token{}, toolHuge, json.RawMessage(fmt.Sprintf(`{"bytes":%d,"idLast":%v}`, huge, idLast)))
			runtime.ReadMemStats(&after)
			if code := wireCode(err); code != contracts.CodeResultTooLarge {
				t.Fatalf("err = %v, want result_too_large", err)
			}
			var ue *upstream.Error
			if errors.As(err, &ue) && ue.Wire.Message != "the MCP server's answer exceeds the server's max_result_bytes" {
				t.Errorf("message %q, want the HTTP path's", ue.Wire.Message)
			}
			t.Logf("allocated %d KiB while reading the answer", (after.TotalAlloc-before.TotalAlloc)>>10)
			if grown := after.TotalAlloc - before.TotalAlloc; grown > 32<<20 {
				t.Errorf("reading the answer allocated %d MiB, want < 32 MiB", grown>>20)
			}
			if after.HeapInuse > before.HeapInuse && after.HeapInuse-before.HeapInuse > 32<<20 {
				t.Errorf("heap in use grew by %d MiB, want < 32 MiB", (after.HeapInuse-before.HeapInuse)>>20)
			}
			n, _ := strconv.Atoi(pid)
			contractstest.Eventually(t, "the process to be stopped and reaped", func() bool { return processGone(n) })

			again, err := callText(ctx, p, srv, toolPid, "")
			if err != nil {
				t.Fatalf("the call after: %v", err)
			}
			if again == pid {
				t.Errorf("the call after ran on the stopped process %s", pid)
			}
			if st := p.Stats(); st.Connects != 2 || st.Clients != 1 {
				t.Errorf("Stats = %+v, want a second process", st)
			}
		})
	}
}

// A line over the limit that shows its id fails only its own call: the
// other calls in flight on the process fail too (it is stopped), but as an
// upstream error, not result_too_large.
func TestPool_StdioMaxResultBytes_OtherCalls(t *testing.T) {
	t.Parallel()
	ctx := contractstest.Ctx(t)
	p := newPool(t, upstream.Options{}, nil)
	srv := proxyServer("big", 1<<20)
	if _, err := callText(ctx, p, srv, toolPid, ""); err != nil {
		t.Fatal(err)
	}
	slow := make(chan error, 1)
	running := make(chan struct{})
	var once sync.Once
	go func() {
		_, err := p.CallTool(ctx, srv, contracts.Token{}, demoserver.ToolSlow, json.RawMessage(`{"ms": 60000}`),
			upstream.WithProgress(func(upstream.Progress) { once.Do(func() { close(running) }) }))
		slow <- err
	}()
	select {
	case <-running: // on the process the huge answer will stop
	case <-ctx.Done():
		t.Fatal("the slow call did not start")
	}
	_, err := p.CallTool(ctx, srv, contracts.Token{}, toolHuge, json.RawMessage(`{"bytes": 4194304}`))
	if code := wireCode(err); code != contracts.CodeResultTooLarge {
		t.Fatalf("err = %v, want result_too_large", err)
	}
	select {
	case err := <-slow:
		if code := wireCode(err); code != contracts.CodeUpstreamError {
			t.Errorf("the other call: %v, want an upstream error", err)
		}
	case <-ctx.Done():
		t.Fatal("the other call did not end with the process")
	}
}

// A stdio server that exits leaves the pool when it exits, without a call
// failing on it: its last answer is still read, and the next call starts a
// new process.
func TestPool_StdioExit(t *testing.T) {
	t.Parallel()
	ctx := contractstest.Ctx(t)
	logs := &contractstest.LogBuffer{}
	p := newPool(t, upstream.Options{}, logs)
	srv := proxyServer("exiting", 1<<20)
	pid, err := callText(ctx, p, srv, toolPid, "")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := callText(ctx, p, srv, toolExit, ""); err != nil || got != "bye" {
		t.Fatalf("exit: %q, %v; want its answer", got, err)
	}
	contractstest.Eventually(t, "the exited process to leave the pool", func() bool { return p.Stats().Clients == 0 })
	n, _ := strconv.Atoi(pid)
	contractstest.Eventually(t, "the exited process to be reaped", func() bool { return processGone(n) })
	if got, err := callText(ctx, p, srv, toolPid, ""); err != nil || got == pid {
		t.Fatalf("the call after: %q, %v; want a new process", got, err)
	}
	if st := p.Stats(); st.Connects != 2 {
		t.Errorf("Stats = %+v, want 2 processes", st)
	}
	contractstest.Eventually(t, "the exit to be logged", func() bool {
		return bytes.Contains([]byte(logs.String()), []byte("exit status 3"))
	})
}

// Closing the pool stops a stdio server that ignores the end of its stdin
// and SIGTERM: it is killed and reaped, and Close returns.
func TestPool_StdioCloseKillsStubborn(t *testing.T) {
	t.Parallel()
	ctx := contractstest.Ctx(t)
	p := upstream.New(upstream.Options{})
	srv := proxyServer("stubborn", 1<<20)
	srv.Env[envStdioStubborn] = "1"
	pid, err := callText(ctx, p, srv, toolPid, "")
	if err != nil {
		t.Fatal(err)
	}
	closeBounded(t, p) // about 3 s here
	n, _ := strconv.Atoi(pid)
	if !processGone(n) {
		t.Errorf("process %d still exists after Close", n)
	}
}

// What a stdio server started stops with it (npx's node, a script's
// children): the server runs as a process group of its own, and once the
// server is gone what is left of the group gets SIGTERM, then SIGKILL.
func TestPool_StdioStopsWhatTheServerStarted(t *testing.T) {
	t.Parallel()
	for _, stubborn := range []bool{false, true} {
		t.Run(fmt.Sprintf("stubborn=%v", stubborn), func(t *testing.T) {
			t.Parallel()
			ctx := contractstest.Ctx(t)
			p := upstream.New(upstream.Options{})
			pid, err := callText(ctx, p, proxyServer("parent", 1<<20), toolChild, fmt.Sprintf(`{"stubborn":%v}`, stubborn))
			if err != nil {
				t.Fatal(err)
			}
			n, err := strconv.Atoi(pid)
			if err != nil || n <= 0 {
				t.Fatalf("child pid %q", pid)
			}
			t.Cleanup(func() { _ = syscall.Kill(n, syscall.SIGKILL) }) // if it outlived the test
			if processEnded(n) {
				t.Fatal("the child is not running")
			}
			closeBounded(t, p) // about 1-2 s here
			contractstest.Eventually(t, "the server's child to be stopped", func() bool { return processEnded(n) })
		})
	}
}

// A stdio server's stderr reaches the worker's log line by line, with the
// caller's credential removed.
func TestPool_StdioStderrLogged(t *testing.T) {
	t.Parallel()
	ctx := contractstest.Ctx(t)
	logs := &contractstest.LogBuffer{}
	p := newPool(t, upstream.Options{}, logs)
	srv := proxyServerAuth("noisy", "USER_TOKEN", 1<<20)
	const secret = "s3cr3t-user-token"
	if got, err := p.CallTool(ctx, srv, contracts.NewToken("Bearer "+secret), toolStderr, nil); err != nil {
		t.Fatalf("stderr: %s, %v", got, err)
	}
	contractstest.Eventually(t, "the stderr line in the log", func() bool {
		for _, l := range logs.Lines(t) {
			if l["message"] == "stdio server stderr" && l["server"] == "noisy" && l["stderr"] == "starting with credential [credential]" {
				return true
			}
		}
		return false
	})
	if strings.Contains(logs.String(), secret) {
		t.Errorf("the credential reached the log:\n%s", logs)
	}
}

// An idle stdio server is stopped and reaped when the pool evicts it.
func TestPool_StdioIdleStopped(t *testing.T) {
	t.Parallel()
	ctx := contractstest.Ctx(t)
	p := newPool(t, upstream.Options{IdleTTL: 50 * time.Millisecond}, nil)
	pid, err := callText(ctx, p, proxyServer("idle", 1<<20), toolPid, "")
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(pid)
	contractstest.Eventually(t, "the idle process to be stopped and reaped", func() bool { return processGone(n) })
	if st := p.Stats(); st.Clients != 0 || st.Evictions != 1 {
		t.Errorf("Stats = %+v, want the process evicted", st)
	}
}
