package dispatch

import (
	"github.com/nats-io/nats.go"

	"github.com/toolbus/toolbus/contracts"
)

// requestOf is the v2 request in m, as a worker reads it.
func requestOf(m *nats.Msg) contracts.Wire {
	return contracts.Wire{Header: contracts.HeaderValue(m.Header[contracts.HeaderRequest]), Body: m.Data}
}

// respond answers m with r in wire format v2, as a worker does.
func respond(m *nats.Msg, r contracts.Reply) error {
	w, err := contracts.EncodeReply(r)
	if err != nil {
		return err
	}
	return m.RespondMsg(&nats.Msg{Header: nats.Header{contracts.HeaderReply: {w.Header}}, Data: w.Body})
}
