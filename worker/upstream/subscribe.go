package upstream

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
)

// Resource subscriptions. A subscription is made on a pooled client that
// listens to the upstream's standalone stream (capListen), where the
// upstream's notifications/resources/updated arrive; each one is passed to
// Options.Notify once per subscriber of its URI. A subscribed client is kept
// (one reference per subscription) until every subscription on it ends:
// idle eviction would silently end them.

// capListen marks clients that keep the upstream's standalone stream open.
const capListen ClientCaps = 1 << 7

// MaxSubscriptions bounds the subscriptions one Pool holds.
const MaxSubscriptions = 10000

// unsubscribeTimeout bounds the upstream resources/unsubscribe.
const unsubscribeTimeout = 5 * time.Second

// subKey names one subscription.
type subKey struct{ server, subscriber, uri string }

// entrySubs are the subscriptions on one pooled client: URI → subscribers.
type entrySubs struct {
	mu    sync.Mutex
	byURI map[string]map[string]bool
}

func (s *entrySubs) add(uri, subscriber string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byURI == nil {
		s.byURI = make(map[string]map[string]bool)
	}
	if s.byURI[uri] == nil {
		s.byURI[uri] = make(map[string]bool)
	}
	s.byURI[uri][subscriber] = true
}

// remove ends one subscription and reports whether it was the URI's last.
func (s *entrySubs) remove(uri, subscriber string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byURI[uri], subscriber)
	if len(s.byURI[uri]) > 0 {
		return false
	}
	delete(s.byURI, uri)
	return true
}

func (s *entrySubs) of(uri string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.byURI[uri]))
	for sub := range s.byURI[uri] {
		out = append(out, sub)
	}
	return out
}

// Subscribe subscribes subscriber (contracts.Subscriber: the caller's key
// and credential) to the resource uri of srv, with the user's credential.
// Subscribing again to the same resource is a no-op. Errors are *Error.
func (p *Pool) Subscribe(ctx context.Context, srv *config.Server, token contracts.Token, subscriber, uri string) error {
	k := subKey{srv.Name, subscriber, uri}
	p.subsMu.Lock()
	_, exists := p.subs[k]
	full := len(p.subs) >= MaxSubscriptions
	p.subsMu.Unlock()
	switch {
	case exists:
		return nil
	case full:
		return &Error{
			Wire:   contracts.NewError(contracts.CodeOverloaded, "this worker holds as many resource subscriptions as it may"),
			Detail: fmt.Sprintf("%d subscriptions", MaxSubscriptions),
		}
	}
	return p.do(ctx, srv, token, capListen, func(ctx context.Context, e *entry) error {
		var req mcp.SubscribeRequest
		req.Params.URI = uri
		if err := e.c.Subscribe(ctx, req); err != nil {
			return err
		}
		p.subsMu.Lock()
		defer p.subsMu.Unlock()
		if _, dup := p.subs[k]; dup { // a concurrent subscribe of the same
			return nil
		}
		p.mu.Lock()
		e.refs++ // kept until Unsubscribe
		p.mu.Unlock()
		p.subs[k] = e
		e.subs.add(uri, subscriber)
		return nil
	})
}

// Unsubscribe ends subscriber's subscription to uri of server if this Pool
// holds it, and reports whether it did. The upstream is told when it was
// the resource's last subscriber on its client.
func (p *Pool) Unsubscribe(server, subscriber, uri string) bool {
	k := subKey{server, subscriber, uri}
	p.subsMu.Lock()
	e := p.subs[k]
	delete(p.subs, k)
	p.subsMu.Unlock()
	if e == nil {
		return false
	}
	if e.subs.remove(uri, subscriber) {
		ctx, cancel := context.WithTimeout(p.ctx, unsubscribeTimeout)
		var req mcp.UnsubscribeRequest
		req.Params.URI = uri
		if err := e.c.Unsubscribe(ctx, req); err != nil {
			p.log.Debug().Str("server", server).Str("token_fp", e.fp).Err(err).Msg("upstream unsubscribe failed")
		}
		cancel()
	}
	p.release(e)
	return true
}

// Subscriptions returns how many subscriptions the Pool holds.
func (p *Pool) Subscriptions() int {
	p.subsMu.Lock()
	defer p.subsMu.Unlock()
	return len(p.subs)
}

// notifyResource passes a notifications/resources/updated of e's upstream
// to every subscriber of its URI.
func (p *Pool) notifyResource(e *entry, n mcp.JSONRPCNotification) {
	if p.opts.Notify == nil {
		return
	}
	uri, _ := n.Params.AdditionalFields["uri"].(string)
	subscribers := e.subs.of(uri)
	if len(subscribers) == 0 {
		return
	}
	p2 := n.Params
	if len(p2.Meta) == 0 {
		p2.Meta = nil
	}
	params, err := json.Marshal(p2)
	if err != nil {
		return
	}
	for _, s := range subscribers {
		p.opts.Notify(e.key.server, s, params)
	}
}
