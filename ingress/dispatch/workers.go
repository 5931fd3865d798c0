package dispatch

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/toolbus/toolbus/contracts"
)

// ErrNotConnected means the ingress has no NATS connection right now.
var ErrNotConnected = errors.New("not connected to NATS")

// WorkerService is the NATS micro service name every worker registers:
// `nats micro ls` lists the workers under it.
const WorkerService = contracts.WorkerService

// Workers pings every worker and gathers the answers that arrive within
// wait (or until ctx ends).
func (d *Dispatcher) Workers(ctx context.Context, wait time.Duration) ([]contracts.PingResponse, error) {
	var out []contracts.PingResponse
	err := d.gather(ctx, contracts.PingSubject, wait, func(data []byte) {
		var p contracts.PingResponse
		if json.Unmarshal(data, &p) == nil && p.Type == contracts.TypePingResponse {
			out = append(out, p)
		}
	})
	return out, err
}

// WorkerStats asks every worker's micro service for its statistics
// ($SRV.STATS.toolbus-worker: identity, metadata, and per endpoint the
// requests served and the worker's slots and circuit breaker) and gathers
// the answers that arrive within wait, sorted by worker name.
func (d *Dispatcher) WorkerStats(ctx context.Context, wait time.Duration) ([]micro.Stats, error) {
	subject, err := micro.ControlSubject(micro.StatsVerb, WorkerService, "")
	if err != nil {
		return nil, err
	}
	var out []micro.Stats
	err = d.gather(ctx, subject, wait, func(data []byte) {
		var s micro.Stats
		if json.Unmarshal(data, &s) == nil && s.Type == micro.StatsResponseType && s.Name == WorkerService {
			out = append(out, s)
		}
	})
	slices.SortFunc(out, func(a, b micro.Stats) int {
		return cmp.Or(cmp.Compare(a.Metadata["worker"], b.Metadata["worker"]), cmp.Compare(a.ID, b.ID))
	})
	return out, err
}

// gather publishes an empty request on subject, which every worker answers,
// and passes each answer that arrives within wait (or until ctx ends) to
// add. No responder at all ends the wait at once.
func (d *Dispatcher) gather(ctx context.Context, subject string, wait time.Duration, add func([]byte)) error {
	if !d.nc.IsConnected() {
		return ErrNotConnected
	}
	inbox := nats.NewInbox()
	sub, err := d.nc.SubscribeSync(inbox)
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	if err := d.nc.PublishRequest(subject, inbox, nil); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return nil // the wait is over
		}
		if isNoResponders(m) {
			return nil
		}
		add(m.Data)
	}
}
