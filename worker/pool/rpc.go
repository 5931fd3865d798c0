package pool

import (
	"encoding/json"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts"
)

// subscribeBroadcasts adds the subscriptions every worker hears (no queue
// group): the cancellation of running synchronous calls
// (contracts.AllCancelsSubject; the worker running the call cancels it) and
// the end of resource subscriptions (contracts.AllUnsubscribesSubject; the
// worker holding the subscription ends it).
func (p *Pool) subscribeBroadcasts(subscribe func(subject string, cb nats.MsgHandler) error) error {
	if err := subscribe(contracts.AllUnsubscribesSubject, p.onUnsubscribe); err != nil {
		return err
	}
	return subscribe(contracts.AllCancelsSubject, p.onCallCancel)
}

// onUnsubscribe ends a resource subscription if this worker holds it. Every
// worker hears it (no queue group): the subscription lives on the one
// whose client made it.
func (p *Pool) onUnsubscribe(m *nats.Msg) {
	u, err := contracts.DecodeUnsubscribe(m.Data)
	if err != nil {
		return
	}
	if sub, ok := contracts.ParseSubject(m.Subject); !ok || sub.Kind != contracts.SubjectUnsubscribe || sub.Server != u.Server {
		return
	}
	if p.up.Unsubscribe(u.Server, u.Subscriber, u.URI) {
		p.log.Debug().Str("server", u.Server).Msg("resource subscription ended")
	}
}

// notifyFunc returns the upstream pool's Notify: each resource update goes
// to the subscriber's notification subject, best effort.
func notifyFunc(nc *nats.Conn, log zerolog.Logger) func(server, subscriber string, params json.RawMessage) {
	return func(server, subscriber string, params json.RawMessage) {
		data, err := json.Marshal(contracts.ServerNotification{
			Type: contracts.TypeServerNotification, Server: server,
			Method: "notifications/resources/updated", Params: params,
		})
		if err == nil {
			err = nc.Publish(contracts.NotifySubject(server, subscriber), data)
		}
		if err != nil {
			log.Warn().Str("server", server).Err(err).Msg("resource update not published")
		}
	}
}

// onCallCancel cancels the call a cancel subject names, if it runs here.
// Job cancellations arrive on the same subjects and are ignored here (the
// jobs runner has its own subscription).
func (p *Pool) onCallCancel(m *nats.Msg) {
	if sub, ok := contracts.ParseSubject(m.Subject); ok && sub.Kind == contracts.SubjectCancel {
		p.h.Cancel(sub.ID)
	}
}

// subscribeFunc returns the handler's Subscribe: a plain subscription on
// nc, for the client's answers to an upstream's requests during a call.
func subscribeFunc(nc *nats.Conn) func(string, func([]byte)) (func(), error) {
	return func(subject string, fn func([]byte)) (func(), error) {
		sub, err := nc.Subscribe(subject, func(m *nats.Msg) { fn(m.Data) })
		if err != nil {
			return nil, err
		}
		return func() { _ = sub.Unsubscribe() }, nil
	}
}
