package jobs

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/toolbus/toolbus/contracts"
	workermetrics "github.com/toolbus/toolbus/worker/metrics"
)

// startJob records a job's time in the queue (from its creation to now, a
// metric and a span in the submitter's trace) and starts observing its
// upstream call.
func (r *Runner) startJob(ctx context.Context, server, tool string, created time.Time) (context.Context, workermetrics.UpstreamObs) {
	if !created.IsZero() {
		r.metrics.QueueWait(server, workermetrics.QueueJob, time.Since(created))
		if _, span := r.tracer.StartAt(ctx, "toolbus.queue_wait", trace.SpanKindInternal, created); span.IsRecording() {
			span.End()
		}
	}
	return r.metrics.StartUpstream(ctx, r.tracer, workermetrics.OpJob, server, tool)
}

// pending reports the jobs of each served server in JetStream, as its
// consumer counts them (for the queue gauges; at scrape time).
func (r *Runner) pending(ctx context.Context) []workermetrics.JobQueue {
	out := make([]workermetrics.JobQueue, 0, len(r.servers))
	for _, s := range r.servers {
		cons, err := r.js.Consumer(ctx, contracts.JobsStream, contracts.JobsConsumer(s))
		if err != nil {
			continue // not created yet, or JetStream unavailable: no figure
		}
		info := cons.CachedInfo() // fresh: Consumer just fetched it
		out = append(out, workermetrics.JobQueue{Server: s, Pending: info.NumPending, AckPending: uint64(info.NumAckPending)})
	}
	return out
}
