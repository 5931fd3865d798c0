package frontdoor

import (
	"context"
	"sync"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/ingress/dispatch"
)

// Listing is one server's tools as a caller may see them, or why they could
// not be listed.
type Listing struct {
	Server *config.Server
	Tools  []dispatch.Tool
	Err    *contracts.Error
}

// List lists the tools of servers at once, each with the caller's
// credential for it on a request of reach (FanOut when the request names
// no server, whatever the number of servers) and the ingress's list budget (through the catalog,
// which reuses a server's list per credential for a while), keeping only
// the tools the caller may use (CheckTool). The listings are in the order
// of servers.
func (p *Policy) List(ctx context.Context, c *Caller, servers []*config.Server, reach Reach) []Listing {
	out := make([]Listing, len(servers))
	var wg sync.WaitGroup
	for i, srv := range servers {
		out[i].Server = srv
		wg.Go(func() {
			tools, err := p.catalog.Tools(ctx, dispatch.List{
				KeyID: c.Key.Name, Server: srv.Name, Timeout: p.cfg.Ingress.ListTimeout.D(), Token: c.Credential(srv, reach),
			})
			if err != nil {
				out[i].Err = err
				return
			}
			for _, t := range tools {
				if p.visible(c, srv, t.Name) {
					out[i].Tools = append(out[i].Tools, t)
				}
			}
		})
	}
	wg.Wait()
	return out
}
