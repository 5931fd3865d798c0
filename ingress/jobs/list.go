package jobs

import (
	"context"
	"sort"

	"github.com/toolbus/toolbus/contracts"
)

// List returns owner's jobs, newest first, optionally only those in status,
// at most limit, starting after cursor (a job id); next is the cursor of the
// following page, "" at the end.
func (s *Store) List(ctx context.Context, owner string, status contracts.JobStatus, limit int, cursor string) ([]*contracts.JobRecord, string, *contracts.Error) {
	kv, _, _, cerr := s.bind(ctx)
	if cerr != nil {
		return nil, "", cerr
	}
	lister, err := kv.ListKeysFiltered(ctx, contracts.OwnerJobsKeys(owner))
	if err != nil {
		return nil, "", s.busError(err)
	}
	prefix := len(contracts.JobKey(owner, ""))
	var ids []string
	for key := range lister.Keys() {
		if id := key[prefix:]; cursor == "" || id < cursor {
			ids = append(ids, id)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(ids)))
	var out []*contracts.JobRecord
	for i, id := range ids {
		rec, cerr := s.Get(ctx, owner, id)
		if cerr != nil {
			if cerr.Code == contracts.CodeNotFound {
				continue // expired between listing and reading
			}
			return nil, "", cerr
		}
		if status != "" && rec.Status != status {
			continue
		}
		out = append(out, rec)
		if len(out) == limit {
			if i < len(ids)-1 {
				return out, id, nil
			}
			break
		}
	}
	return out, "", nil
}
