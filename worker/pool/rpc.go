package pool

import (
	"encoding/json"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/worker/handler"
)

// subscribeRPC adds, for the MCP endpoint of the ingress, the relay of other
// MCP requests (contracts.RPCSubject of every served server, in the
// workers' queue group, within the same call slots as tools/call) and the
// cancellation of running synchronous calls (contracts.AllCancelsSubject,
// which every worker hears; the one running the call cancels it).
func (p *Pool) subscribeRPC(subscribe func(subject string, queue bool, cb nats.MsgHandler) error) error {
	for _, s := range p.servers {
		if err := subscribe(contracts.RPCSubject(s), true, p.dispatch(s, p.limits[s], p.h.HandleRPC, handler.RejectRPC)); err != nil {
			return err
		}
	}
	if err := subscribe(contracts.AllUnsubscribesSubject, false, p.onUnsubscribe); err != nil {
		return err
	}
	return subscribe(contracts.AllCancelsSubject, false, p.onCallCancel)
}

// onUnsubscribe ends a resource subscription if this worker holds it. Every
// worker hears it (no queue group): the subscription lives on the one
// whose client made it.
func (p *Pool) onUnsubscribe(m *nats.Msg) {
	u, err := contracts.DecodeUnsubscribe(m.Data)
	if err != nil {
		return
	}
	if server, ok := contracts.ServerFromUnsubscribeSubject(m.Subject); !ok || server != u.Server {
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
	if id, ok := contracts.IDFromCancelSubject(m.Subject); ok {
		p.h.Cancel(id)
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
