package telemetry

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"time"
)

// Healthcheck is the `<binary> healthcheck [--timeout 3s] URL` command of
// both binaries (args after the command's name): it GETs URL and succeeds
// on a 2xx answer — the container healthcheck of an image without a shell
// (distroless). example is a URL the binary serves, for the usage text.
func Healthcheck(ctx context.Context, binary, example string, args []string, stdout, stderr io.Writer) error {
	usage := fmt.Sprintf(`usage: %s healthcheck [--timeout 3s] URL

GETs URL and exits 0 on a 2xx answer, 1 otherwise: the container
healthcheck of an image without a shell (distroless), e.g.
  ["CMD", "/toolbus", "healthcheck", %q]`, binary, example)
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(fs.Output(), usage) }
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer's status line")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New(usage)
	}
	return probeURL(ctx, fs.Arg(0), *timeout, stdout)
}

// probeURL GETs rawURL within timeout and succeeds on a 2xx status. It
// reads only the status line and headers (an endpoint may stream), follows
// no redirect and uses no proxy: it checks this container, nothing between.
func probeURL(ctx context.Context, rawURL string, timeout time.Duration, stdout io.Writer) error {
	u, err := neturl.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("healthcheck: want an http(s) URL, got %q", rawURL)
	}
	if timeout <= 0 {
		return errors.New("healthcheck: --timeout must be positive")
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	client := &http.Client{
		Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %s: %w", u.Redacted(), err)
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("healthcheck: %s: %s", u.Redacted(), resp.Status)
	}
	_, err = fmt.Fprintf(stdout, "healthy: %s: %s\n", u.Redacted(), resp.Status)
	return err
}
