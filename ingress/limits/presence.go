package limits

import (
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts"
)

// DefaultPresenceInterval is how often a replica announces itself; one
// not heard from for three intervals is no longer counted.
const DefaultPresenceInterval = 2 * time.Second

// Presence announces this ingress replica on contracts.IngressPresenceSubject
// and counts the live replicas (itself included) from the others'
// announcements. The count changes only in the background; Replicas is a
// lock-free read for the hot path.
type Presence struct {
	nc       *nats.Conn
	id       string
	interval time.Duration
	log      zerolog.Logger
	now      func() time.Time

	mu    sync.Mutex
	seen  map[string]time.Time // other replicas, by id: last heard
	count atomic.Int64         // live replicas, itself included
	sub   *nats.Subscription
	stop  chan struct{}
	done  chan struct{}
}

// StartPresence subscribes to the announcements, announces this replica at
// once and then every interval (DefaultPresenceInterval if 0), until Close.
func StartPresence(nc *nats.Conn, interval time.Duration, log zerolog.Logger) (*Presence, error) {
	if interval <= 0 {
		interval = DefaultPresenceInterval
	}
	p := &Presence{nc: nc, id: nuid.Next(), interval: interval, log: log, now: time.Now,
		seen: map[string]time.Time{}, stop: make(chan struct{}), done: make(chan struct{})}
	p.count.Store(1)
	sub, err := nc.Subscribe(contracts.IngressPresenceSubject, p.heard)
	if err != nil {
		return nil, err
	}
	p.sub = sub
	p.announce()
	go p.run()
	return p, nil
}

// Replicas is the number of live ingress replicas, at least 1.
func (p *Presence) Replicas() int {
	if p == nil {
		return 1
	}
	return int(p.count.Load())
}

// Close stops announcing and counting.
func (p *Presence) Close() {
	select {
	case <-p.stop:
		return
	default:
	}
	close(p.stop)
	<-p.done
	_ = p.sub.Unsubscribe()
}

func (p *Presence) run() {
	defer close(p.done)
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.announce()
			p.expire()
		}
	}
}

func (p *Presence) announce() {
	data, _ := json.Marshal(contracts.IngressPresence{Type: contracts.TypeIngressPresence, Replica: p.id})
	if err := p.nc.Publish(contracts.IngressPresenceSubject, data); err != nil {
		p.log.Debug().Str("error", err.Error()).Msg("ingress presence not announced")
	}
}

// maxReplicas bounds the replicas remembered (announcements are not
// authenticated beyond NATS's own permissions).
const maxReplicas = 1024

func (p *Presence) heard(m *nats.Msg) {
	a, err := contracts.DecodeIngressPresence(m.Data)
	if err != nil || a.Replica == p.id {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, known := p.seen[a.Replica]; !known && len(p.seen) >= maxReplicas {
		return
	}
	p.seen[a.Replica] = p.now()
	p.count.Store(int64(1 + len(p.seen)))
}

// expire forgets the replicas not heard from for three intervals.
func (p *Presence) expire() {
	cut := p.now().Add(-3 * p.interval)
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, at := range p.seen {
		if at.Before(cut) {
			delete(p.seen, id)
		}
	}
	p.count.Store(int64(1 + len(p.seen)))
}
