package dispatch

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/toolbus/toolbus/contracts"
)

// Tool is one upstream tool as a worker listed it.
type Tool struct {
	Name string
	// Raw is the tool's MCP JSON object, passed to clients unchanged.
	Raw json.RawMessage
}

// maxCatalogEntries bounds the cache: one entry per (server, user token).
const maxCatalogEntries = 10000

// Catalog caches tool lists per server and user-token fingerprint for a
// short TTL, since what an upstream lists can depend on who asks.
// Safe for concurrent use.
type Catalog struct {
	d   *Dispatcher
	ttl time.Duration

	mu      sync.Mutex
	entries map[string]catalogEntry
}

type catalogEntry struct {
	tools   []Tool
	expires time.Time
}

// NewCatalog returns a Catalog that lists through d and keeps lists for ttl.
func NewCatalog(d *Dispatcher, ttl time.Duration) *Catalog {
	return &Catalog{d: d, ttl: ttl, entries: make(map[string]catalogEntry)}
}

// Tools returns the tools of l.Server as seen with l.Token.
func (c *Catalog) Tools(ctx context.Context, l List) ([]Tool, *contracts.Error) {
	// Keyed by the whole credential set's SHA-256: a list seen with one
	// credential is never served for another (a short fingerprint could
	// collide).
	sum := l.Token.Sum()
	key := l.Server + "\x00" + string(sum[:])
	now := c.d.now()
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.tools, nil
	}
	raw, err := c.d.List(ctx, NewRequestID(), l)
	if err != nil {
		return nil, err
	}
	tools, perr := parseTools(raw)
	if perr != nil {
		return nil, contracts.NewError(contracts.CodeUpstreamError, "the server's tool list is not valid JSON")
	}
	c.mu.Lock()
	if len(c.entries) >= maxCatalogEntries {
		for k, old := range c.entries { // drop the expired ones first
			if !now.Before(old.expires) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries { // then arbitrary ones, down to the bound
			if len(c.entries) < maxCatalogEntries {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[key] = catalogEntry{tools: tools, expires: now.Add(c.ttl)}
	c.mu.Unlock()
	return tools, nil
}

func parseTools(raw json.RawMessage) ([]Tool, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, err
	}
	tools := make([]Tool, 0, len(items))
	for _, item := range items {
		var t struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal(item, &t); err != nil {
			return nil, err
		}
		tools = append(tools, Tool{Name: t.Name, Raw: item})
	}
	return tools, nil
}
