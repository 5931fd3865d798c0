package jobs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
)

// DuplicateWindow is how long the jobs stream remembers a Nats-Msg-Id (the
// job id): a submit published twice within it is stored once.
const DuplicateWindow = 2 * time.Minute

// Infra is the JetStream infrastructure of async jobs.
type Infra struct {
	Stream  jetstream.Stream
	Records jetstream.KeyValue
	Results jetstream.ObjectStore
}

// StreamConfig is the configuration of the jobs stream.
func StreamConfig(j config.Jobs) jetstream.StreamConfig {
	maxBytes := j.MaxStreamBytes
	if maxBytes <= 0 {
		maxBytes = -1
	}
	return jetstream.StreamConfig{
		Name:        contracts.JobsStream,
		Description: "toolbus async jobs",
		Subjects:    []string{contracts.AllJobsSubject},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    j.Replicas,
		MaxAge:      j.Retention.D(),
		MaxMsgs:     j.MaxStreamMessages,
		MaxBytes:    maxBytes,
		Discard:     jetstream.DiscardNew,
		Duplicates:  min(DuplicateWindow, j.Retention.D()),
	}
}

// RecordsConfig is the configuration of the job records KV bucket.
func RecordsConfig(j config.Jobs) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      contracts.JobsBucket,
		Description: "toolbus job records",
		MaxBytes:    capBytes(j.MaxRecordsBytes),
		History:     1,
		TTL:         j.Retention.D(),
		Storage:     jetstream.FileStorage,
		Replicas:    j.Replicas,
	}
}

// ResultsConfig is the configuration of the job results object store.
func ResultsConfig(j config.Jobs) jetstream.ObjectStoreConfig {
	return jetstream.ObjectStoreConfig{
		Bucket:      contracts.ResultsBucket,
		Description: "toolbus job results too large for a record",
		MaxBytes:    capBytes(j.MaxResultsBytes),
		TTL:         j.Retention.D(),
		Storage:     jetstream.FileStorage,
		Replicas:    j.Replicas,
	}
}

// capBytes is a MaxBytes setting: n, or -1 (none) for 0 or less.
func capBytes(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}

// MaxJobsInFlight bounds the jobs of one server delivered and not yet
// acknowledged, over all workers together. Each worker already takes a job
// only when it has a free call slot (its max_concurrency for the server), so
// this is only a safety bound: it must not be the server's per-worker
// max_concurrency, or N workers together would run no more than one does.
const MaxJobsInFlight = 10000

// ConsumerConfig is the configuration of server's durable jobs consumer.
// maxConcurrency (the server's max_concurrency per worker) is not a bound of
// the consumer: see MaxJobsInFlight.
func ConsumerConfig(server string, maxConcurrency int, j config.Jobs) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       contracts.JobsConsumer(server),
		Description:   "toolbus jobs of server " + server,
		FilterSubject: contracts.ServerJobsSubject(server),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       j.AckWait.D(),
		// Unlimited: a job's attempts are bounded by its record.
		MaxDeliver:    -1,
		MaxAckPending: max(MaxJobsInFlight, maxConcurrency),
	}
}

// Setup creates the jobs stream, the records bucket and the results object
// store, or updates them where their configuration differs from j. It is
// idempotent; every worker runs it at start. What is already configured as
// wanted is only bound to: an update, even an empty one, is a replicated
// change of the stream (and nats-server 2.15 races it against consumers
// being created at the same time).
func Setup(ctx context.Context, js jetstream.JetStream, j config.Jobs) (*Infra, error) {
	stream, err := ensureStream(ctx, js, StreamConfig(j))
	if err != nil {
		return nil, fmt.Errorf("jobs stream %s: %w", contracts.JobsStream, err)
	}
	records, err := ensureRecords(ctx, js, RecordsConfig(j))
	if err != nil {
		return nil, fmt.Errorf("jobs bucket %s: %w", contracts.JobsBucket, err)
	}
	results, err := ensureResults(ctx, js, ResultsConfig(j))
	if err != nil {
		return nil, fmt.Errorf("results object store %s: %w", contracts.ResultsBucket, err)
	}
	return &Infra{Stream: stream, Records: records, Results: results}, nil
}

func ensureStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig) (jetstream.Stream, error) {
	return ensure(ctx, js.Stream, want.Name, jetstream.ErrStreamNotFound,
		func(s jetstream.Stream, _ context.Context) (jetstream.StreamConfig, error) {
			return s.CachedInfo().Config, nil
		},
		func(have jetstream.StreamConfig) bool {
			return slices.Equal(have.Subjects, want.Subjects) && have.Description == want.Description &&
				have.Retention == want.Retention && have.Storage == want.Storage && have.Replicas == want.Replicas &&
				have.MaxAge == want.MaxAge && have.MaxMsgs == want.MaxMsgs && have.MaxBytes == want.MaxBytes &&
				have.Discard == want.Discard && have.Duplicates == want.Duplicates
		},
		func(ctx context.Context) (jetstream.Stream, error) { return js.CreateOrUpdateStream(ctx, want) })
}

func ensureRecords(ctx context.Context, js jetstream.JetStream, want jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	return ensure(ctx, js.KeyValue, want.Bucket, jetstream.ErrBucketNotFound, jetstream.KeyValue.Status,
		func(st jetstream.KeyValueStatus) bool {
			have := st.Config()
			return have.Description == want.Description && have.History == want.History && have.TTL == want.TTL &&
				have.Storage == want.Storage && have.Replicas == want.Replicas && capBytes(have.MaxBytes) == want.MaxBytes
		},
		func(ctx context.Context) (jetstream.KeyValue, error) { return js.CreateOrUpdateKeyValue(ctx, want) })
}

func ensureResults(ctx context.Context, js jetstream.JetStream, want jetstream.ObjectStoreConfig) (jetstream.ObjectStore, error) {
	return ensure(ctx, js.ObjectStore, want.Bucket, jetstream.ErrBucketNotFound, jetstream.ObjectStore.Status,
		func(have jetstream.ObjectStoreStatus) bool {
			return have.Description() == want.Description && have.TTL() == want.TTL &&
				have.Storage() == want.Storage && have.Replicas() == want.Replicas &&
				capBytes(objectMaxBytes(have)) == want.MaxBytes
		},
		func(ctx context.Context) (jetstream.ObjectStore, error) {
			return js.CreateOrUpdateObjectStore(ctx, want)
		})
}

// ensure binds to the stream or bucket get finds by name when its
// configuration (read with config) is as wanted (same); otherwise, or when
// there is none (notFound), it creates or updates it with put.
func ensure[T, C any](ctx context.Context, get func(context.Context, string) (T, error), name string, notFound error,
	config func(T, context.Context) (C, error), same func(C) bool, put func(context.Context) (T, error)) (T, error) {
	var none T
	have, err := get(ctx, name)
	switch {
	case err == nil:
		c, err := config(have, ctx)
		if err != nil {
			return none, err
		}
		if same(c) {
			return have, nil
		}
	case !errors.Is(err, notFound):
		return none, err
	}
	return put(ctx)
}

// objectMaxBytes is the MaxBytes of an object store (its stream's).
func objectMaxBytes(st jetstream.ObjectStoreStatus) int64 {
	if info, ok := st.(interface{ StreamInfo() *jetstream.StreamInfo }); ok && info.StreamInfo() != nil {
		return info.StreamInfo().Config.MaxBytes
	}
	return -1
}
