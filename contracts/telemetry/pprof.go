//go:build pprof

package telemetry

import (
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof/ on http.DefaultServeMux
	"os"
)

// A binary built with -tags pprof (scripts/bench -profile builds them so)
// serves net/http/pprof on 127.0.0.1:$TOOLBUS_PPROF_PORT when that is set.
// Both binaries import this package; release builds contain none of this.
func init() {
	if port := os.Getenv("TOOLBUS_PPROF_PORT"); port != "" {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", port))
		if err != nil {
			fmt.Fprintln(os.Stderr, "pprof:", err)
			os.Exit(2)
		}
		go func() { _ = http.Serve(ln, nil) }() // lives as long as the profiling build's process
	}
}
