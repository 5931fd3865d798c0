package contractstest_test

import (
	"strings"
	"testing"

	"github.com/toolbus/toolbus/contracts/contractstest"
)

// loop is a shell loop that ends only on a signal; sh runs a TERM trap
// after the current sleep.
const loop = "while :; do sleep 0.05; done"

func TestProcess_StopIsSIGTERM(t *testing.T) {
	t.Parallel()
	p := contractstest.StartProcess(t, "sh", []string{"GREETING=hello"},
		"-c", `echo "out $GREETING"; echo ready >&2; trap 'echo terminated >&2; exit 0' TERM; `+loop)
	p.WaitLog(t, "ready", contractstest.WaitTimeout)
	p.Stop()
	select {
	case <-p.Exited():
	default:
		t.Fatal("Stop returned before the process ended")
	}
	if !strings.Contains(p.Stderr.String(), "terminated") {
		t.Errorf("stderr %q: the process did not get SIGTERM", p.Stderr)
	}
	if got := p.Stdout.String(); got != "out hello\n" {
		t.Errorf("stdout %q, want the environment passed on", got)
	}
	p.Stop() // a second Stop returns at once
}

func TestProcess_Kill(t *testing.T) {
	t.Parallel()
	p := contractstest.StartProcess(t, "sh", nil, "-c", `trap '' TERM; echo ready >&2; `+loop)
	p.WaitLog(t, "ready", contractstest.WaitTimeout)
	p.Kill(t)
	select {
	case <-p.Exited():
	default:
		t.Fatal("Kill returned before the process ended")
	}
	if p.Pid() <= 0 {
		t.Errorf("Pid %d", p.Pid())
	}
}
