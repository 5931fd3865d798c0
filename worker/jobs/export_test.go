package jobs

import "sync"

var beforeFinish sync.Map // job id → func()

func init() {
	f := func(jobID string) {
		if hook, ok := beforeFinish.Load(jobID); ok {
			hook.(func())()
		}
	}
	testBeforeFinish.Store(&f)
}

// SetBeforeFinish has f run before the outcome of the job jobID is written
// (a slow store, on demand), until restore runs.
func SetBeforeFinish(jobID string, f func()) (restore func()) {
	beforeFinish.Store(jobID, f)
	return func() { beforeFinish.Delete(jobID) }
}
