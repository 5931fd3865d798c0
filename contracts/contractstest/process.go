package contractstest

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// StopTimeout bounds how long Process.Stop waits after SIGTERM before it
// kills the process.
const StopTimeout = 15 * time.Second

// Process is a started binary (an ingress, a worker) whose output is
// captured, started by StartProcess.
type Process struct {
	// Stdout and Stderr hold what the process wrote to each.
	Stdout, Stderr *LogBuffer

	cmd    *exec.Cmd
	cancel context.CancelFunc
	exited chan struct{}
}

// StartProcess starts bin with args and this process's environment plus
// env. It is stopped (Stop) when the test ends.
func StartProcess(t testing.TB, bin string, env []string, args ...string) *Process {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &Process{Stdout: &LogBuffer{}, Stderr: &LogBuffer{}, cancel: cancel, exited: make(chan struct{})}
	p.cmd = exec.CommandContext(ctx, bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.Stdout, p.Stderr
	// Stop cancels ctx: SIGTERM, and SIGKILL if the process is still there
	// after StopTimeout.
	p.cmd.Cancel = func() error { return p.cmd.Process.Signal(syscall.SIGTERM) }
	p.cmd.WaitDelay = StopTimeout
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(p.Stop)
	return p
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited is closed when the process has ended.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Stop sends SIGTERM and waits for the process to end, killing it after
// StopTimeout. It does nothing to a process that has ended.
func (p *Process) Stop() {
	p.cancel()
	<-p.exited
}

// Kill sends SIGKILL and waits for the process to end.
func (p *Process) Kill(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.exited
}

// WaitLog waits until the process has written want to its stderr, and
// fails the test when the process ends first or within passes.
func (p *Process) WaitLog(t testing.TB, want string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(p.Stderr.String(), want) {
		select {
		case <-p.exited:
			t.Fatalf("the process exited before logging %q:\n%s", want, p.Stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the process never logged %q:\n%s", want, p.Stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
