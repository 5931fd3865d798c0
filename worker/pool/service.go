package pool

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/toolbus/toolbus/contracts"
)

// The NATS micro service every worker registers, so that `nats micro ls`,
// `nats micro info toolbus-worker` and `nats micro stats toolbus-worker`
// list the workers, their endpoints and counters, and so that the ingress
// can count the workers of each server ($SRV.STATS.toolbus-worker).
const (
	// ServiceName is the micro service name of every worker.
	ServiceName = contracts.WorkerService
	// ServiceVersion is the service's (semver) version: the wire contract's
	// major version.
	ServiceVersion = "1.0.0"
	// PingEndpoint is the endpoint on contracts.PingSubject.
	PingEndpoint = "ping"
)

// drainPoll is how often Stop looks whether the service's subscriptions
// have drained.
const drainPoll = 5 * time.Millisecond

// EndpointStats is the data a worker adds to each endpoint in its micro
// STATS: the state of the server's call slots and circuit breaker (shared by
// the server's call, list and rpc endpoints). The ping endpoint reports the
// process-wide slots.
type EndpointStats struct {
	Server string `json:"server,omitempty"`
	// Slots is how many calls this worker runs on the server at once (the
	// server's max_concurrency, at most worker.max_concurrency), Running how
	// many run now (async jobs included), Waiting how many wait for a slot.
	Slots   int `json:"slots"`
	Running int `json:"running"`
	Waiting int `json:"waiting"`
	// Overloaded counts requests answered overloaded (no slot, or the
	// worker stopping).
	Overloaded uint64 `json:"overloaded"`
	// Breaker is the server's circuit breaker, if there is one.
	Breaker *breakerStats `json:"breaker,omitempty"`
}

// serviceConfig is the micro service of this worker.
func (p *Pool) serviceConfig() micro.Config {
	return micro.Config{
		Name:        ServiceName,
		Version:     ServiceVersion,
		Description: "toolbus worker: MCP tool calls for " + strings.Join(p.servers, ", "),
		QueueGroup:  contracts.WorkerQueueGroup,
		Metadata: map[string]string{
			"worker":          p.name,
			"servers":         strings.Join(p.servers, ","),
			"max_concurrency": strconv.Itoa(cap(p.global)),
		},
		StatsHandler: p.endpointStats,
		ErrorHandler: func(_ micro.Service, err *micro.NATSError) {
			p.log.Error().Str("subject", err.Subject).Str("error", err.Description).Msg("worker service error")
		},
	}
}

// endpointName names the endpoint of a toolbus subject: "call_jira" for
// toolbus.v2.call.jira.
func endpointName(subject string) string {
	name := strings.TrimPrefix(subject, contracts.SubjectRoot+".")
	return strings.ReplaceAll(name, ".", "_")
}

// addEndpoint registers subject as an endpoint of the service, in the
// workers' queue group, its requests taken by d. The endpoint's handler
// hands the request on at once (d.take never blocks), so micro's timing
// stats measure the hand-off only.
func (p *Pool) addEndpoint(svc micro.Service, subject string, d *dispatcher) error {
	meta := map[string]string{}
	if op, server, ok := strings.Cut(strings.TrimPrefix(subject, contracts.SubjectRoot+"."), "."); ok {
		meta["op"], meta["server"] = op, server
	}
	err := svc.AddEndpoint(endpointName(subject), micro.HandlerFunc(func(r micro.Request) {
		d.take(&nats.Msg{Subject: r.Subject(), Reply: r.Reply(), Data: r.Data(), Header: nats.Header(r.Headers())}) // headers: the trace context
	}), micro.WithEndpointSubject(subject), micro.WithEndpointQueueGroup(contracts.WorkerQueueGroup), micro.WithEndpointMetadata(meta))
	if err != nil {
		return fmt.Errorf("worker pool: endpoint %s: %w", subject, err)
	}
	return nil
}

// addPing registers the ping endpoint: every worker answers
// (no queue group) with the servers it serves.
func (p *Pool) addPing(svc micro.Service) error {
	ping, err := json.Marshal(contracts.PingResponse{Type: contracts.TypePingResponse, Worker: p.name, Servers: p.servers})
	if err != nil {
		return err
	}
	err = svc.AddEndpoint(PingEndpoint, micro.HandlerFunc(func(r micro.Request) {
		if r.Reply() != "" {
			_ = r.Respond(ping)
		}
	}), micro.WithEndpointSubject(contracts.PingSubject), micro.WithEndpointQueueGroupDisabled())
	if err != nil {
		return fmt.Errorf("worker pool: endpoint %s: %w", contracts.PingSubject, err)
	}
	return nil
}

// endpointStats is the service's StatsHandler.
func (p *Pool) endpointStats(e *micro.Endpoint) any {
	if e.Subject == contracts.PingSubject {
		return EndpointStats{Slots: cap(p.global), Running: len(p.global)}
	}
	lim := p.limits[e.Metadata["server"]]
	if lim == nil {
		return nil
	}
	s := EndpointStats{
		Server:     lim.server,
		Slots:      min(cap(lim.slots), cap(p.global)),
		Running:    len(lim.slots),
		Waiting:    len(lim.queue),
		Overloaded: lim.overloaded.Load(),
	}
	if lim.breaker != nil {
		b := lim.breaker.stats()
		s.Breaker = &b
	}
	return s
}

// waitServiceDrained waits, within ctx, until the stopped service has handed
// on every request NATS delivered to it. On a connection of its own (see
// WithServiceConn) that is when the connection has no subscription left:
// nats.go removes a draining subscription only once its last callback has
// returned. On a shared connection it can only make sure that the server has
// processed the unsubscriptions; a request still queued in the client then
// finds the pool closed and is answered overloaded (retryable), which the
// ingress retries on another worker.
func (p *Pool) waitServiceDrained(ctx context.Context) error {
	if p.svcConn == p.nc {
		if p.nc.IsConnected() {
			return p.nc.FlushWithContext(ctx)
		}
		return nil
	}
	t := time.NewTicker(drainPoll)
	defer t.Stop()
	// Disconnected, the subscriptions cannot drain, and no request reaches
	// them: there is nothing to wait for.
	for p.svcConn.NumSubscriptions() > 0 && !p.svcConn.IsClosed() && p.svcConn.IsConnected() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("worker pool: the service's subscriptions did not drain: %w", ctx.Err())
		case <-t.C:
		}
	}
	return nil
}
