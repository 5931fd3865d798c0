package natsconn

import (
	"errors"
	"fmt"
	neturl "net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts/config"
)

// Connection names, used when nats.name is not set.
const (
	NameIngress = "toolbus-ingress"
	NameWorker  = "toolbus-worker"
	NameDev     = "toolbus-dev"
)

// DefaultReconnectWait is the pause between two attempts to reach one
// server (the ingress's; the worker waits a second).
const DefaultReconnectWait = 250 * time.Millisecond

// Name is the connection name: c.Name, else fallback.
func Name(c config.NATS, fallback string) string {
	if c.Name != "" {
		return c.Name
	}
	return fallback
}

// Options are the connection options for c: the name (c.Name, else
// fallbackName), TLS and the credentials file when configured, retrying a
// failed first connect and reconnecting forever every DefaultReconnectWait,
// and handlers that log on log: connected (after a failed first connect),
// disconnected (with the reason; a Close logs nothing), reconnected and
// asynchronous errors (a slow consumer, a permission refused).
func Options(c config.NATS, fallbackName string, log zerolog.Logger) ([]nats.Option, error) {
	opts := []nats.Option{
		nats.Name(Name(c, fallbackName)),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(DefaultReconnectWait),
		nats.RetryOnFailedConnect(true),
		nats.ConnectHandler(func(nc *nats.Conn) {
			log.Info().Str("url", nc.ConnectedUrlRedacted()).Msg("NATS connected")
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: the connection was closed on purpose
				log.Warn().Err(err).Msg("NATS disconnected")
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info().Str("url", nc.ConnectedUrlRedacted()).Msg("NATS reconnected")
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			ev := log.Error().Err(err)
			if sub != nil {
				ev = ev.Str("subject", sub.Subject)
			}
			ev.Msg("NATS error")
		}),
	}
	if c.TLS.Enabled() {
		tlsConfig, err := c.TLS.Config()
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.Secure(tlsConfig))
	}
	if c.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	}
	return opts, nil
}

// Connect dials c.URL with Options(c, fallbackName, log), then extra (a
// later option wins: a binary's own reconnect wait or buffer policy, an
// in-process server). A server that cannot be reached yet is no error: the
// connection keeps trying. The error names the URL without its passwords.
func Connect(c config.NATS, fallbackName string, log zerolog.Logger, extra ...nats.Option) (*nats.Conn, error) {
	opts, err := Options(c, fallbackName, log)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(c.URL, append(opts, extra...)...)
	if err != nil {
		if ue := (*neturl.Error)(nil); errors.As(err, &ue) {
			err = ue.Err // its text holds the URL, password and all
		}
		return nil, fmt.Errorf("NATS %s: %w", RedactURL(c.URL), err)
	}
	return nc, nil
}

// ErrDrainTimeout is returned by Drain when the connection did not close in
// time (it is closed then, dropping what was left).
var ErrDrainTimeout = errors.New("NATS drain did not finish in time")

// Drain unsubscribes nc's subscriptions after their pending messages are
// handled, flushes what is left to publish, and closes nc, waiting at most
// bound; then it closes nc at once and returns ErrDrainTimeout. A
// connection that is closed already, or is reconnecting (nothing can be
// flushed), is closed at once without an error. The closed handler nc had
// still runs.
func Drain(nc *nats.Conn, bound time.Duration) error {
	closed := make(chan struct{})
	previous := nc.ClosedHandler()
	nc.SetClosedHandler(func(c *nats.Conn) {
		if previous != nil {
			previous(c)
		}
		close(closed)
	})
	if err := nc.Drain(); err != nil {
		nc.Close()
		return nil
	}
	timer := time.NewTimer(bound)
	defer timer.Stop()
	select {
	case <-closed:
		return nil
	case <-timer.C:
		nc.Close()
		return ErrDrainTimeout
	}
}

// RedactURL hides the passwords in a NATS URL list (nats.go takes several,
// comma-separated), for logs and error messages.
func RedactURL(raw string) string {
	parts := strings.Split(raw, ",")
	for i, p := range parts {
		u, err := neturl.Parse(strings.TrimSpace(p))
		switch {
		case err != nil:
			parts[i] = "(unparsable URL)" // it may hold a password
		case u.User != nil:
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}
