package jobs

import (
	"context"
	"errors"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/toolbus/toolbus/contracts"
)

// Causes of a running job's cancellation (besides errStopping).
var (
	// errCancelled: a cancellation was announced on the job's cancel subject.
	errCancelled = errors.New("the job was cancelled")
	// errNotOwned: the job's record is no longer this attempt's (cancelled,
	// taken over by another worker, or gone).
	errNotOwned = errors.New("the job's record changed under this attempt")
)

// registry is the jobs running on this worker, by job id, with the function
// that cancels each.
type registry struct {
	mu   sync.Mutex
	jobs map[string]context.CancelCauseFunc
}

func newRegistry() *registry { return &registry{jobs: make(map[string]context.CancelCauseFunc)} }

// add registers job id; false when it is registered already (the same job
// delivered again while this worker runs it).
func (g *registry) add(id string, cancel context.CancelCauseFunc) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, dup := g.jobs[id]; dup {
		return false
	}
	g.jobs[id] = cancel
	return true
}

func (g *registry) remove(id string) {
	g.mu.Lock()
	delete(g.jobs, id)
	g.mu.Unlock()
}

func (g *registry) cancel(id string, cause error) bool {
	g.mu.Lock()
	cancel := g.jobs[id]
	g.mu.Unlock()
	if cancel == nil {
		return false
	}
	cancel(cause)
	return true
}

// onCancel handles a message on contracts.AllCancelsSubject: every worker
// hears it, and the one running the job cancels it. The ingress has already
// moved the record to cancelled; the cancelled attempt leaves it so.
func (r *Runner) onCancel(m *nats.Msg) {
	sub, ok := contracts.ParseSubject(m.Subject)
	if !ok || sub.Kind != contracts.SubjectCancel || !contracts.ValidJobID(sub.ID) {
		return
	}
	if r.local.cancel(sub.ID, errCancelled) {
		r.log.Debug().Str("job_id", sub.ID).Msg("job cancellation received")
	}
}
