package upstream

import (
	"bytes"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
)

// stdioWaitDelay bounds how long reaping a stdio server waits for its stderr
// pipe after the process has exited (a grandchild may hold it open).
const stdioWaitDelay = 2 * time.Second

// InheritedEnv returns environ without toolbus's own variables (TOOLBUS_*,
// which include the workers' private sealing keys): the base environment of
// stdio servers when Options.BaseEnv is nil.
func InheritedEnv(environ []string) []string {
	out := make([]string, 0, len(environ))
	for _, kv := range environ {
		if !strings.HasPrefix(kv, "TOOLBUS_") {
			out = append(out, kv)
		}
	}
	return out
}

// stdioEnv is the environment of a stdio server process: the base
// environment, then srv.Env - each ${Header-Name} in a value replaced by
// that header's value in the caller's set (empty when the caller sent
// none) - then the caller's Authorization in srv.AuthEnv when the server
// takes one. A variable named by srv.AuthEnv is never inherited, so a
// process started without a credential does not see the worker's own value.
func stdioEnv(base []string, srv *config.Server, token contracts.Token) []string {
	creds := token.Reveal()
	env := make([]string, 0, len(base)+len(srv.Env)+1)
	for _, kv := range base {
		name, _, _ := strings.Cut(kv, "=")
		if _, overridden := srv.Env[name]; overridden || (srv.AuthEnv != "" && name == srv.AuthEnv) {
			continue
		}
		env = append(env, kv)
	}
	for _, name := range slices.Sorted(maps.Keys(srv.Env)) {
		if srv.AuthEnv != "" && name == srv.AuthEnv {
			continue
		}
		env = append(env, name+"="+config.ExpandPlaceholders(srv.Env[name], func(h string) string { return creds[h] }))
	}
	if v := creds[contracts.HeaderAuthorization]; srv.AuthEnv != "" && v != "" {
		env = append(env, srv.AuthEnv+"="+v)
	}
	return env
}

// maxStderrLine bounds one logged line of a stdio server's stderr.
const maxStderrLine = 2048

// stderrLog writes a stdio server's stderr to the logger, one entry per line,
// with the process's credential removed.
type stderrLog struct {
	log   zerolog.Logger
	token contracts.Token

	mu  sync.Mutex
	buf []byte
}

func newStderrLog(log zerolog.Logger, token contracts.Token) *stderrLog {
	return &stderrLog{log: log, token: token}
}

func (w *stderrLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.emit(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > maxStderrLine {
		w.emit(w.buf)
		w.buf = w.buf[:0]
	}
	if len(w.buf) == 0 {
		w.buf = nil // let a large chunk's array go
	}
	return len(p), nil
}

func (w *stderrLog) emit(line []byte) {
	line = bytes.TrimRight(line, "\r")
	if len(line) == 0 {
		return
	}
	if len(line) > maxStderrLine {
		line = line[:maxStderrLine]
	}
	w.log.Info().Str("stderr", redact(string(line), w.token)).Msg("stdio server stderr")
}

// processEnv is the environment read when Options.BaseEnv is nil.
func processEnv() []string { return InheritedEnv(os.Environ()) }
