package telemetry

import (
	"io"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
)

// NewLogger returns a process's base logger, writing to w with a timestamp
// on every line, and close, which writes out what it buffered: run it
// before the process exits. Lines are JSON, the production shape log
// pipelines parse, buffered (LineWriter: a line below error level waits up
// to lineFlushDelay), unless forPerson is set and w is a terminal: then they
// are zerolog's console lines (time, colored level, message, fields;
// NO_COLOR is obeyed), unbuffered. The ingress sets forPerson in dev mode
// only; the worker never does, as it runs only in production shape. Piped or
// redirected output stays JSON in dev mode too, so it can still be parsed.
func NewLogger(w io.Writer, forPerson bool) (log zerolog.Logger, close func()) {
	if forPerson && IsTerminal(w) {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
		return zerolog.New(w).With().Timestamp().Logger(), func() {}
	}
	lw := NewLineWriter(w)
	return zerolog.New(lw).With().Timestamp().Logger(), func() { _ = lw.Close() }
}

// IsTerminal reports whether w is a terminal (a file descriptor that is a
// TTY, or a Cygwin/MSYS pseudo terminal).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}
