// Package panics logs a panic the worker recovered from (a handler or a
// job that panicked: its caller gets internal, the process lives).
package panics

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/rs/zerolog"
)

// Log completes ev - an error event that already names the request - with
// the panic and the stack, and sends it. The panic's value is logged only
// when the runtime wrote it (a nil dereference, an index out of range); any
// other value may carry what an upstream sent, so only its type is. The
// stack holds function names, offsets and argument words, never the
// contents of strings. Call it from the deferred function that recovered.
func Log(ev *zerolog.Event, v any) {
	ev.Str("panic", Text(v)).Str("stack", string(debug.Stack())).Msg("panic recovered")
}

// Text describes a recovered panic value without its content, unless the
// runtime wrote it.
func Text(v any) string {
	if err, ok := v.(runtime.Error); ok {
		return err.Error()
	}
	return fmt.Sprintf("a value of type %T", v)
}
