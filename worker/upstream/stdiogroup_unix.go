//go:build unix

package upstream

import (
	"os/exec"
	"syscall"
)

// ownGroup has cmd start as the leader of a process group of its own, so
// that stopping the server reaches what it started (npx's node, a shell
// script's children), and so that a signal meant for the worker's own group
// (a terminal's Ctrl-C) does not reach it: the worker stops it. A context
// that ends kills the whole group.
func ownGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return signalGroup(cmd, syscall.SIGKILL) }
}

// signalGroup sends sig to every process of cmd's group (cmd started).
func signalGroup(cmd *exec.Cmd, sig syscall.Signal) error {
	return syscall.Kill(-cmd.Process.Pid, sig)
}

// groupLeft reports whether a process of cmd's group still exists (a zombie
// its new parent has not reaped yet included).
func groupLeft(cmd *exec.Cmd) bool {
	return syscall.Kill(-cmd.Process.Pid, 0) == nil
}
