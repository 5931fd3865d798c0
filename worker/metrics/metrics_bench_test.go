package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
)

// BenchmarkMetrics_Request is the count every handled call makes: its
// series is looked up in the worker's own cache, not in the CounterVec.
func BenchmarkMetrics_Request(b *testing.B) {
	m := New(prometheus.NewRegistry(), &config.File{MCPServers: map[string]*config.Server{"jira": {}}})
	m.tools.Learn("jira", "create_issue")
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.Request(contracts.OpCall, "jira", "create_issue", "")
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				m.Request(contracts.OpCall, "jira", "create_issue", "")
			}
		})
	})
}
