package contracts

import (
	"fmt"
	"strings"
)

// ErrorCode is a stable, machine-readable error identifier. Codes are part of
// the public API (HTTP bodies use them too): add new ones, never rename.
type ErrorCode string

// The error codes. The ingress maps each to an HTTP status in one place
// (ingress/httpapi/status.go).
const (
	CodeUnauthorized         ErrorCode = "unauthorized"           // missing or unknown gateway key
	CodeForbidden            ErrorCode = "forbidden"              // the key may not use this server or tool
	CodeForbiddenParam       ErrorCode = "forbidden_param"        // an argument the server's allowed_params does not let the tool take
	CodeUnknownServer        ErrorCode = "unknown_server"         // no such server (for this key)
	CodeUnknownTool          ErrorCode = "unknown_tool"           // no such tool (for this key)
	CodeAmbiguousTool        ErrorCode = "ambiguous_tool"         // a bare tool name that several servers have
	CodeInvalidRequest       ErrorCode = "invalid_request"        // malformed body, wrong types, bad headers
	CodeRequestTooLarge      ErrorCode = "request_too_large"      // body over the configured limit
	CodeHeadersTooLarge      ErrorCode = "headers_too_large"      // request headers over the limit
	CodeUnsupportedProtocol  ErrorCode = "unsupported_protocol"   // a transfer coding or HTTP version the gateway does not implement
	CodeNotFound             ErrorCode = "not_found"              // no such route or resource
	CodeMethodNotAllowed     ErrorCode = "method_not_allowed"     // wrong HTTP method for the route
	CodeUpstreamUnauthorized ErrorCode = "upstream_unauthorized"  // the MCP server rejected the user's credential
	CodeUpstreamError        ErrorCode = "upstream_error"         // the MCP server failed or is unreachable
	CodeUpstreamTimeout      ErrorCode = "upstream_timeout"       // the MCP server did not answer in time
	CodeUpstreamAuthFailed   ErrorCode = "upstream_auth_failed"   // the worker could not obtain or use the server's own credential
	CodeNoWorkers            ErrorCode = "no_workers"             // no worker serves this server right now
	CodeOverloaded           ErrorCode = "overloaded"             // every worker for the server is at its limit
	CodeSealInvalid          ErrorCode = "seal_invalid"           // the sealed token failed to open or bind
	CodeTimeout              ErrorCode = "timeout"                // the request's own deadline passed
	CodeTooManyJobs          ErrorCode = "too_many_jobs"          // the key has as many jobs queued as it may
	CodeRateLimited          ErrorCode = "rate_limited"           // the key is over its fair share: requests in flight, calls to a server, streams or request rate
	CodeCancelled            ErrorCode = "cancelled"              // the caller cancelled the job
	CodeIdempotencyConflict  ErrorCode = "idempotency_conflict"   // an Idempotency-Key reused with another request
	CodeStorageQuota         ErrorCode = "storage_quota_exceeded" // the key's retained jobs are at its quota
	CodeStorageFull          ErrorCode = "storage_full"           // the job store is full
	CodeInternal             ErrorCode = "internal"               // a bug; details are in the logs, not here
)

// Retryable reports whether a caller may retry the same request unchanged
// and expect a different outcome.
func (c ErrorCode) Retryable() bool {
	switch c {
	case CodeUpstreamError, CodeUpstreamTimeout, CodeUpstreamAuthFailed, CodeNoWorkers, CodeOverloaded, CodeTimeout, CodeTooManyJobs, CodeStorageFull, CodeRateLimited:
		return true
	}
	return false
}

// Error is the error object on the wire (NATS replies) and, with the same
// fields, in every HTTP error body. Message is for humans and never contains
// a secret.
type Error struct {
	Code      ErrorCode `json:"code"`
	Message   string    `json:"message"`
	Retryable bool      `json:"retryable"`
	// WWWAuthenticate carries the upstream's WWW-Authenticate challenge with
	// upstream_unauthorized, so that the client can start its own OAuth flow.
	WWWAuthenticate string `json:"www_authenticate,omitempty"`
	// Available lists what the caller could have named instead (servers or
	// tools), with unknown_server, unknown_tool and ambiguous_tool; the
	// arguments the tool takes with forbidden_param.
	Available []string `json:"available,omitempty"`
	// RetryAfterSeconds, with rate_limited, is when the caller may expect
	// to be admitted again (HTTP's Retry-After carries it too).
	RetryAfterSeconds int `json:"retry_after_seconds,omitempty"`
}

// NewError returns an Error with code's default retryability.
func NewError(code ErrorCode, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Retryable: code.Retryable()}
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Is matches another *Error by code, so errors.Is(err, &Error{Code: c}) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// MaxQuoted bounds what an error message quotes of a caller's input.
const MaxQuoted = 256

// Clip bounds a caller-supplied string quoted in an error message to
// MaxQuoted bytes (and an ellipsis), so an error never echoes a large
// input whole.
func Clip(s string) string {
	if len(s) > MaxQuoted {
		return strings.ToValidUTF8(s[:MaxQuoted], "") + "…"
	}
	return s
}
