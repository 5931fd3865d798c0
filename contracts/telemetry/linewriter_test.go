package telemetry

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// output is a writer whose content tests read while a LineWriter writes to
// it; it counts the writes it gets.
type output struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.writes++
	return o.b.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

func (o *output) Writes() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.writes
}

// waitFor waits (bounded) until out holds want.
func waitFor(t *testing.T, out *output, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("%q not written within 10s; written: %q", want, out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Lines below error level are held, then written together, in order, by
// the delayed flush: one write for many lines.
func TestLineWriter_HoldsLinesThenWritesThemTogether(t *testing.T) {
	out := &output{}
	w := NewLineWriter(out)
	defer w.Close()
	log := zerolog.New(w)
	for i := range 50 {
		log.Info().Int("n", i).Msg("call")
	}
	waitFor(t, out, `{"level":"info","n":49,"message":"call"}`)
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 50 {
		t.Fatalf("%d lines written, want 50", len(lines))
	}
	for i, line := range lines {
		if want := fmt.Sprintf(`{"level":"info","n":%d,"message":"call"}`, i); line != want {
			t.Fatalf("line %d = %q, want %q", i, line, want)
		}
	}
	if n := out.Writes(); n >= 50 {
		t.Errorf("%d writes for 50 lines: not buffered", n)
	}
}

// An error line is written before the call returns, with every line held
// before it, so a process that dies next has logged why.
func TestLineWriter_ErrorLinesAtOnce(t *testing.T) {
	for _, level := range []zerolog.Level{zerolog.ErrorLevel, zerolog.FatalLevel, zerolog.PanicLevel} {
		out := &output{}
		w := NewLineWriter(out)
		log := zerolog.New(w)
		log.Info().Msg("before")
		log.WithLevel(level).Msg("failed")
		if got, want := out.String(), `{"level":"info","message":"before"}`+"\n"+fmt.Sprintf(`{"level":%q,"message":"failed"}`, level)+"\n"; got != want {
			t.Errorf("%s: written at once %q, want %q", level, got, want)
		}
		_ = w.Close()
	}
}

// A full buffer is written out by the write that would overflow it; a line
// longer than the buffer goes through whole, after what was held.
func TestLineWriter_FullBufferAndLongLines(t *testing.T) {
	out := &output{}
	w := NewLineWriter(out)
	defer w.Close()
	line := strings.Repeat("a", 1023) + "\n"
	for range lineBufferSize / len(line) {
		if _, err := w.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	if out.String() != "" {
		t.Fatal("written before the buffer was full")
	}
	if _, err := w.Write([]byte("next\n")); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); len(got) != lineBufferSize {
		t.Fatalf("the full buffer was not written by the overflowing write: %d bytes written", len(got))
	}
	long := strings.Repeat("b", 2*lineBufferSize) + "\n"
	if _, err := w.Write([]byte(long)); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.HasSuffix(got, "next\n"+long) {
		t.Fatalf("the long line was not written whole after the held line (%d bytes written)", len(got))
	}
}

// Close writes out what is held; later lines go straight through.
func TestLineWriter_Close(t *testing.T) {
	out := &output{}
	w := NewLineWriter(out)
	_, _ = w.Write([]byte("held\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if out.String() != "held\n" {
		t.Fatalf("after Close: %q", out.String())
	}
	_, _ = w.Write([]byte("late\n"))
	if out.String() != "held\nlate\n" {
		t.Fatalf("a line after Close was held: %q", out.String())
	}
}

// Lines from many goroutines are each written whole, none lost.
func TestLineWriter_Concurrent(t *testing.T) {
	out := &output{}
	w := NewLineWriter(out)
	log := zerolog.New(w)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				log.Info().Int("g", g).Int("i", i).Str("pad", strings.Repeat("x", 100)).Msg("line")
			}
		})
	}
	wg.Wait()
	_ = w.Close()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 8*500 {
		t.Fatalf("%d lines, want %d", len(lines), 8*500)
	}
	seen := map[string]bool{}
	for _, line := range lines {
		if !strings.HasPrefix(line, `{"level":"info","g":`) || !strings.HasSuffix(line, `"message":"line"}`) || seen[line] {
			t.Fatalf("a torn or repeated line: %q", line)
		}
		seen[line] = true
	}
}
