package jobs

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/natsconn"
)

// checkQuota refuses a submit, storage_quota_exceeded (507), when gateway
// key keyID's jobs keep as many bytes or records in the store as
// jobs.max_retained_bytes_per_key / max_retained_jobs_per_key (or its
// key_quotas entry) allow, counted over the retention period (see
// contracts.Usage). Every ingress replica reads the same count.
func (s *Store) checkQuota(ctx context.Context, kv jetstream.KeyValue, keyID string) *contracts.Error {
	entry, err := kv.Get(ctx, contracts.UsageKey(contracts.KeyTag(keyID)))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return s.busError(err)
	}
	u, err := contracts.DecodeUsage(entry.Value())
	if err != nil {
		return nil // unreadable: the next worker write starts it again
	}
	bytes, jobs := u.Total(s.now(), s.cfg.Retention.D())
	maxBytes, maxJobs := s.cfg.Quota(keyID)
	if bytes >= maxBytes || jobs >= maxJobs {
		return contracts.NewError(contracts.CodeStorageQuota,
			"this key's jobs keep %d bytes in %d jobs, its quota is %d bytes in %d jobs; results expire after %s",
			bytes, jobs, maxBytes, maxJobs, s.cfg.Retention.D())
	}
	return nil
}

// addUsage counts a submitted job and its record's bytes for keyID. A
// failure is logged: the job is accepted.
func (s *Store) addUsage(ctx context.Context, kv jetstream.KeyValue, keyID string, bytes int64) {
	err := natsconn.UpdateKV(ctx, kv, contracts.UsageKey(contracts.KeyTag(keyID)), func(old []byte) []byte {
		u, err := contracts.DecodeUsage(old)
		if err != nil {
			u = &contracts.Usage{} // unreadable: start again
		}
		u.Add(s.now(), s.cfg.Retention.D(), bytes, 1)
		data, _ := json.Marshal(u)
		return data
	})
	if err != nil {
		s.log.Warn().Str("key", keyID).Err(err).Msg("usage not counted")
	}
}
