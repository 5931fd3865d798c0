package telemetry

import (
	"io"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Log lines are buffered: a write system call per line is, at a few
// thousand calls a second, a visible share of a process's CPU (the worker
// and the ingress log one line per call). As zap's BufferedWriteSyncer does,
// lines collect in a buffer that is written out when it fills or
// lineFlushDelay after its first line, whichever comes first; a line at
// error level or above is written out at once, with everything before it.
// What a process that dies without closing its writer (SIGKILL, a runtime
// fatal error) loses is the last lineFlushDelay of lines below error level.
const (
	lineBufferSize = 64 << 10
	lineFlushDelay = 100 * time.Millisecond
)

// LineWriter buffers log lines on their way to an io.Writer (see above).
// It is safe for concurrent use; each line is written whole. Close flushes
// it; after Close it writes every line straight through.
type LineWriter struct {
	mu     sync.Mutex
	out    io.Writer
	buf    []byte
	timer  *time.Timer // armed while buf holds lines
	closed bool
}

// NewLineWriter returns a LineWriter to out.
func NewLineWriter(out io.Writer) *LineWriter {
	return &LineWriter{out: out}
}

// Write buffers one line (zerolog writes each event with one call).
func (w *LineWriter) Write(p []byte) (int, error) {
	return w.WriteLevel(zerolog.NoLevel, p)
}

// WriteLevel is zerolog's LevelWriter: lines at error level and above are
// written out at once.
func (w *LineWriter) WriteLevel(level zerolog.Level, p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	urgent := level >= zerolog.ErrorLevel && level != zerolog.NoLevel
	if w.closed || (len(w.buf) == 0 && (urgent || len(p) >= lineBufferSize)) {
		return w.out.Write(p)
	}
	if len(w.buf)+len(p) > lineBufferSize {
		if err := w.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) >= lineBufferSize {
			return w.out.Write(p)
		}
	}
	if w.buf == nil {
		w.buf = make([]byte, 0, lineBufferSize)
	}
	w.buf = append(w.buf, p...)
	if urgent {
		return len(p), w.flushLocked()
	}
	if w.timer == nil {
		w.timer = time.AfterFunc(lineFlushDelay, w.flushLater)
	} else if len(w.buf) == len(p) {
		w.timer.Reset(lineFlushDelay)
	}
	return len(p), nil
}

// Flush writes out the buffered lines.
func (w *LineWriter) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flushLocked()
}

// Close flushes the buffered lines and stops buffering: later lines are
// written straight through, so a line logged while a process exits is
// never held.
func (w *LineWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	if w.timer != nil {
		w.timer.Stop()
	}
	return w.flushLocked()
}

func (w *LineWriter) flushLater() {
	_ = w.Flush() // as an unbuffered logger would, a failed write is dropped
}

func (w *LineWriter) flushLocked() error {
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.out.Write(w.buf)
	w.buf = w.buf[:0]
	return err
}
