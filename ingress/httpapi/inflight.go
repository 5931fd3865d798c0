package httpapi

import (
	"sync/atomic"

	"github.com/gin-gonic/gin"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/ingress/metrics"
)

// limitInFlight bounds the requests being served at once. One over the bound
// is answered 503 overloaded (retryable, with Retry-After) at once, before
// it is handled: under a burst the ingress sheds load instead of letting
// requests and goroutines pile up, so its memory stays bounded. It comes
// after readBodyFirst: a client that stalls its body holds no slot (the
// body's read is bounded by ingress.body_timeout and max_body_bytes
// instead). max <= 0 means no bound. m counts the requests in flight and the
// rejections.
func limitInFlight(max int, m *metrics.Metrics) gin.HandlerFunc {
	if max <= 0 {
		var n atomic.Int64
		m.SetInFlight(func() int { return int(n.Load()) })
		return func(c *gin.Context) {
			n.Add(1)
			defer n.Add(-1)
			c.Next()
		}
	}
	slots := make(chan struct{}, max)
	m.SetInFlight(func() int { return len(slots) })
	return func(c *gin.Context) {
		select {
		case slots <- struct{}{}:
		default:
			m.Overloaded()
			abortWithError(c, contracts.NewError(contracts.CodeOverloaded,
				"the gateway is serving as many requests as it may (%d); retry shortly", max))
			return
		}
		defer func() { <-slots }()
		c.Next()
	}
}
