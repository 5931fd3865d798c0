package telemetry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo terminal: the terminal end, and the end that reads
// what is written to it. Both are closed when the test ends.
func openPTY(t *testing.T) (term, reader *os.File) {
	t.Helper()
	reader, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo terminals here: %v", err)
	}
	t.Cleanup(func() { reader.Close() })
	sc, err := reader.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var ioctlErr error
	if err := sc.Control(func(fd uintptr) {
		if ioctlErr = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); ioctlErr == nil {
			n, ioctlErr = unix.IoctlGetInt(int(fd), unix.TIOCGPTN)
		}
	}); err != nil || ioctlErr != nil {
		t.Fatalf("unlock the pseudo terminal: %v %v", err, ioctlErr)
	}
	term, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { term.Close() })
	return term, reader
}

// Asked for a person on a terminal, the logger writes console lines.
func TestNewLogger_ConsoleOnATerminal(t *testing.T) {
	term, reader := openPTY(t)
	if !IsTerminal(term) {
		t.Fatal("a pseudo terminal is not taken for a terminal")
	}
	t.Setenv("NO_COLOR", "1")
	log, _ := NewLogger(term, true)
	log.Info().Str("server", "demo").Msg("hello")
	if err := reader.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	buf := make([]byte, 4096)
	for !strings.Contains(got.String(), "\n") {
		n, err := reader.Read(buf)
		if err != nil {
			t.Fatalf("read the terminal: %v (so far %q)", err, got.String())
		}
		got.Write(buf[:n])
	}
	line := strings.TrimSpace(got.String())
	if json.Valid([]byte(line)) || !strings.Contains(line, "INF") || !strings.Contains(line, "hello") || !strings.Contains(line, "server=demo") {
		t.Fatalf("not a console line: %q", line)
	}

	// In production shape a terminal gets JSON all the same.
	log, closeLog := NewLogger(term, false)
	defer closeLog()
	log.Info().Msg("json")
	got.Reset()
	for !strings.Contains(got.String(), "\n") {
		n, err := reader.Read(buf)
		if err != nil {
			t.Fatalf("read the terminal: %v (so far %q)", err, got.String())
		}
		got.Write(buf[:n])
	}
	if !json.Valid(bytes.TrimSpace(got.Bytes())) {
		t.Fatalf("production shape on a terminal is not JSON: %q", got.String())
	}
}
