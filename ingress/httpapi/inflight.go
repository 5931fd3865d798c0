package httpapi

import (
	"github.com/gin-gonic/gin"

	"github.com/toolbus/toolbus/contracts"
)

// DefaultMaxInFlight is how many API requests one ingress serves at once
// when Options.MaxInFlight is 0.
const DefaultMaxInFlight = 1024

// limitInFlight bounds the requests being served at once. One over the bound
// is answered 503 overloaded (retryable, with Retry-After) at once, before
// its body is read: under a burst the ingress sheds load instead of letting
// requests, goroutines and buffered bodies pile up, so its memory stays
// bounded. max < 0 means no bound.
func limitInFlight(max int) gin.HandlerFunc {
	if max < 0 {
		return func(c *gin.Context) { c.Next() }
	}
	slots := make(chan struct{}, max)
	return func(c *gin.Context) {
		select {
		case slots <- struct{}{}:
		default:
			abortWithError(c, contracts.NewError(contracts.CodeOverloaded,
				"the gateway is serving as many requests as it may (%d); retry shortly", max))
			return
		}
		defer func() { <-slots }()
		c.Next()
	}
}
