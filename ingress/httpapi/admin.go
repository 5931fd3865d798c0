package httpapi

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/ingress/dispatch"
)

// AdminKeyName is the gateway key allowed on the admin endpoints: the key
// named "master" (LiteLLM's general_settings.master_key, or a key of that
// name in keys).
const AdminKeyName = "master"

// adminWait is how long the admin endpoints gather worker answers.
const adminWait = 500 * time.Millisecond

// requireAdmin lets only the admin key through (403 forbidden otherwise).
// It runs after authenticate.
func requireAdmin() gin.HandlerFunc {
	return func(c *gin.Context) {
		if caller(c).Key.Name != AdminKeyName {
			abortWithError(c, contracts.NewError(contracts.CodeForbidden, "only the %s key may use the admin endpoints", AdminKeyName))
			return
		}
		c.Next()
	}
}

// adminWorker is one worker in GET /admin/workers.
type adminWorker struct {
	Name      string            `json:"name"`
	ID        string            `json:"id"`
	Version   string            `json:"version"`
	Started   time.Time         `json:"started"`
	Servers   []string          `json:"servers"`
	Metadata  map[string]string `json:"metadata,omitempty"`
	Endpoints []adminEndpoint   `json:"endpoints"`
}

// adminEndpoint is one endpoint of a worker's micro service, with the
// requests it took and the worker's data (slots, breaker).
type adminEndpoint struct {
	Name        string          `json:"name"`
	Subject     string          `json:"subject"`
	QueueGroup  string          `json:"queue_group,omitempty"`
	Requests    int             `json:"requests"`
	Errors      int             `json:"errors"`
	AvgHandover string          `json:"avg_handover"`
	Data        json.RawMessage `json:"data,omitempty"`
}

// adminWorkers serves GET /admin/workers: every worker that answers within
// a moment (the NATS micro service dispatch.WorkerService), with its
// endpoints and counters, and how many workers serve each configured
// server.
func (a *API) adminWorkers(c *gin.Context) {
	stats, err := a.d.WorkerStats(c.Request.Context(), adminWait)
	if err != nil {
		abortWithError(c, contracts.NewError(contracts.CodeNoWorkers, "workers unknown: %v", err))
		return
	}
	perServer := map[string]int{}
	for _, name := range a.cfg.ServerNames() {
		perServer[name] = 0
	}
	workers := make([]adminWorker, 0, len(stats))
	for _, s := range stats {
		w := adminWorker{Name: s.Metadata["worker"], ID: s.ID, Version: s.Version, Started: s.Started, Metadata: s.Metadata, Servers: []string{}}
		for _, e := range s.Endpoints {
			w.Endpoints = append(w.Endpoints, adminEndpoint{
				Name: e.Name, Subject: e.Subject, QueueGroup: e.QueueGroup,
				Requests: e.NumRequests, Errors: e.NumErrors, AvgHandover: e.AverageProcessingTime.String(),
				Data: e.Data,
			})
			if sub, ok := contracts.ParseSubject(e.Subject); ok && sub.Kind == contracts.SubjectCall {
				w.Servers = append(w.Servers, sub.Server)
				perServer[sub.Server]++
			}
		}
		workers = append(workers, w)
	}
	c.JSON(http.StatusOK, gin.H{"service": dispatch.WorkerService, "count": len(workers), "servers": perServer, "workers": workers})
}
