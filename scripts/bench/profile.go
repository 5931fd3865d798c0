package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// profile collects, while one measurement of d runs, a CPU profile and an
// allocation profile (only what was allocated meanwhile) of the ingress, the
// first worker and nats-server, into the -profile directory as
// <label>-<process>.{cpu,allocs}.pb.gz. Read them with
// `go tool pprof -top FILE`. The returned wait blocks until they are written.
// Without -profile it does nothing.
func (s *system) profile(label string, d time.Duration) (wait func()) {
	if s.profileDir == "" {
		return func() {}
	}
	secs := max(1, int(d/time.Second))
	targets := map[string]int{"ingress": s.ingress.pprofPort, "nats": s.natsProf}
	if len(s.workers) > 0 {
		targets["worker"] = s.workers[0].pprofPort
	}
	label = strings.NewReplacer(" ", "_", "/", "_", "(", "", ")", "").Replace(label)
	hc := &http.Client{Timeout: time.Duration(secs)*time.Second + 30*time.Second}
	var wg sync.WaitGroup
	for name, port := range targets {
		for kind, endpoint := range map[string]string{"cpu": "profile", "allocs": "allocs"} {
			wg.Go(func() {
				url := fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/%s?seconds=%d", port, endpoint, secs)
				file := filepath.Join(s.profileDir, fmt.Sprintf("%s-%s.%s.pb.gz", label, name, kind))
				if err := fetchTo(hc, url, file); err != nil {
					fmt.Fprintf(os.Stderr, "  profile %s: %v\n", file, err)
				}
			})
		}
	}
	return wg.Wait
}

func fetchTo(hc *http.Client, url, file string) error {
	resp, err := hc.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: status %d", url, resp.StatusCode)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
