package httpapi

import (
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/ingress/frontdoor"
)

// httpStatus maps an error code to its HTTP status. It is the only place
// that does.
func httpStatus(code contracts.ErrorCode) int {
	switch code {
	case contracts.CodeUnauthorized, contracts.CodeUpstreamUnauthorized:
		return http.StatusUnauthorized
	case contracts.CodeForbidden, contracts.CodeForbiddenParam:
		return http.StatusForbidden
	case contracts.CodeUnknownServer, contracts.CodeUnknownTool, contracts.CodeNotFound:
		return http.StatusNotFound
	case contracts.CodeInvalidRequest, contracts.CodeAmbiguousTool:
		return http.StatusBadRequest
	case contracts.CodeRequestTooLarge:
		return http.StatusRequestEntityTooLarge
	case contracts.CodeHeadersTooLarge:
		return http.StatusRequestHeaderFieldsTooLarge
	case contracts.CodeUnsupportedProtocol:
		return http.StatusNotImplemented // 505 for an HTTP version (JSONErrors keeps Go's status)
	case contracts.CodeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case contracts.CodeUpstreamError, contracts.CodeUpstreamAuthFailed, contracts.CodeSealInvalid, contracts.CodeResultTooLarge:
		return http.StatusBadGateway
	case contracts.CodeUpstreamTimeout, contracts.CodeTimeout:
		return http.StatusGatewayTimeout
	case contracts.CodeNoWorkers, contracts.CodeOverloaded:
		return http.StatusServiceUnavailable
	case contracts.CodeTooManyJobs, contracts.CodeRateLimited:
		return http.StatusTooManyRequests
	case contracts.CodeIdempotencyConflict:
		return http.StatusConflict
	case contracts.CodeStorageQuota:
		return http.StatusInsufficientStorage
	case contracts.CodeStorageFull:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// errorBody is the JSON shape of every error response: toolbus's error
// object, and the same error as LiteLLM's proxy writes it (FastAPI's
// HTTPException detail, {"error": ..., "message": ...}), so that a client
// written for LiteLLM reads it.
type errorBody struct {
	Error  *contracts.Error `json:"error"`
	Detail errorDetail      `json:"detail"`
}

// errorDetail is LiteLLM's detail object: error is the toolbus code.
type errorDetail struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

// abortWithError writes e as the response and stops the handler chain.
func abortWithError(c *gin.Context, e *contracts.Error) {
	if e.WWWAuthenticate != "" && e.Code == contracts.CodeUpstreamUnauthorized {
		c.Header("WWW-Authenticate", e.WWWAuthenticate)
	}
	switch {
	case e.RetryAfterSeconds > 0:
		c.Header("Retry-After", strconv.Itoa(e.RetryAfterSeconds))
	case e.Retryable:
		c.Header("Retry-After", "1")
	}
	frontdoor.Of(c).Code = e.Code
	c.AbortWithStatusJSON(httpStatus(e.Code), errorBody{Error: e, Detail: errorDetail{Error: string(e.Code), Message: e.Message}})
}
