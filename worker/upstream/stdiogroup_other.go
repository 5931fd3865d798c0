//go:build !unix

package upstream

import (
	"os/exec"
	"syscall"
)

// Without process groups, stopping a stdio server reaches the server only.

func ownGroup(*exec.Cmd) {}

func signalGroup(cmd *exec.Cmd, sig syscall.Signal) error {
	if sig == syscall.SIGKILL {
		return cmd.Process.Kill()
	}
	return cmd.Process.Signal(sig)
}

func groupLeft(*exec.Cmd) bool { return false }
