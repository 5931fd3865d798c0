package jobs

import (
	"context"
	"encoding/json"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/natsconn"
)

// addUsage counts bytes of stored result against the quota of gateway key
// keyID (contracts.Usage, under contracts.UsageKey in the records bucket):
// ingresses refuse the key's submits once it is over. A failure is logged,
// not the job's: the result is stored.
func (r *Runner) addUsage(ctx context.Context, kv jetstream.KeyValue, keyID string, bytes int64) {
	err := natsconn.UpdateKV(ctx, kv, contracts.UsageKey(contracts.KeyTag(keyID)), func(old []byte) []byte {
		u, err := contracts.DecodeUsage(old)
		if err != nil {
			u = &contracts.Usage{} // unreadable: start again
		}
		u.Add(r.now(), r.jobs.Retention.D(), bytes, 0)
		data, _ := json.Marshal(u)
		return data
	})
	if err != nil {
		r.log.Warn().Str("key", keyID).Str("error", err.Error()).Msg("usage not counted")
	}
}
