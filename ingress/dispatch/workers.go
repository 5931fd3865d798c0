package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/toolbus/toolbus/contracts"
)

// ErrNotConnected means the ingress has no NATS connection right now.
var ErrNotConnected = errors.New("not connected to NATS")

// Workers pings every worker and gathers the answers that arrive within
// wait (or until ctx ends).
func (d *Dispatcher) Workers(ctx context.Context, wait time.Duration) ([]contracts.PingResponse, error) {
	if !d.nc.IsConnected() {
		return nil, ErrNotConnected
	}
	inbox := nats.NewInbox()
	sub, err := d.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	if err := d.nc.PublishRequest(contracts.PingSubject, inbox, nil); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var out []contracts.PingResponse
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return out, nil // the wait is over
		}
		if isNoResponders(m) {
			return nil, nil
		}
		var p contracts.PingResponse
		if json.Unmarshal(m.Data, &p) == nil && p.Type == contracts.TypePingResponse {
			out = append(out, p)
		}
	}
}
