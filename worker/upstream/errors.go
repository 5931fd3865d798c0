package upstream

import (
	"context"
	"errors"
	"regexp"
	"strings"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/toolbus/toolbus/contracts"
)

// Error is a failed upstream call. Wire is what the caller may see; Detail
// describes the cause for the worker's own logs by its class only (the
// wire code, the HTTP status, the JSON-RPC error class, a timeout or an
// unreachable server; see Describe): never text the upstream sent, which
// could echo the user's credential in a form no redaction recognises.
// Error unwraps to Wire, so errors.Is(err, &contracts.Error{Code: c}) works.
type Error struct {
	Wire   *contracts.Error
	Detail string
}

func (e *Error) Error() string { return e.Wire.Error() }

// Unwrap returns the wire error.
func (e *Error) Unwrap() error { return e.Wire }

// maxDetail bounds Error.Detail.
const maxDetail = 512

// Classify maps an upstream failure to the wire error the caller receives.
// wwwAuth is the WWW-Authenticate challenge of the upstream's 401, if one was
// seen; it is passed on with upstream_unauthorized so the client can start its
// own OAuth flow. Messages are fixed phrases: they never quote the upstream's
// response, which could echo the credential.
func Classify(err error, wwwAuth string) *contracts.Error {
	var wire *contracts.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &wire):
		return wire
	case errors.Is(err, errResultTooLarge):
		return contracts.NewError(contracts.CodeResultTooLarge, "the MCP server's answer exceeds the server's max_result_bytes")
	case isAuthRequired(err):
		e := contracts.NewError(contracts.CodeUpstreamUnauthorized, "the MCP server rejected the user's credential")
		e.WWWAuthenticate = wwwAuth
		return e
	case errors.Is(err, context.DeadlineExceeded):
		return contracts.NewError(contracts.CodeUpstreamTimeout, "the MCP server did not answer in time")
	case errors.Is(err, context.Canceled):
		return contracts.NewError(contracts.CodeTimeout, "the call was cancelled")
	case errors.Is(err, mcp.ErrInvalidParams) && isToolNotFound(err):
		return contracts.NewError(contracts.CodeUnknownTool, "the MCP server has no such tool")
	case errors.Is(err, mcp.ErrInvalidParams):
		return contracts.NewError(contracts.CodeInvalidRequest, "the MCP server rejected the call's parameters")
	case errors.Is(err, mcp.ErrInvalidRequest), errors.Is(err, mcp.ErrParseError):
		// The server could not read the request it was sent: the caller's
		// input (arguments it cannot decode, such as the number 1e400), not
		// the server's health. Not retryable; the breaker ignores it.
		return contracts.NewError(contracts.CodeInvalidRequest, "the MCP server could not parse the call's request")
	case errors.Is(err, transport.ErrSessionTerminated), errors.Is(err, transport.ErrLegacySSEServer):
		return contracts.NewError(contracts.CodeUpstreamError, "the MCP server refused the request (HTTP 4xx)")
	case isUnreachable(err):
		return contracts.NewError(contracts.CodeUpstreamError, "the MCP server is unreachable")
	default:
		return contracts.NewError(contracts.CodeUpstreamError, "the MCP server failed the request")
	}
}

// isAuthRequired reports whether the upstream answered 401.
func isAuthRequired(err error) bool {
	return errors.Is(err, transport.ErrAuthorizationRequired) || errors.Is(err, transport.ErrOAuthAuthorizationRequired) ||
		errors.Is(err, transport.ErrUnauthorized)
}

// isToolNotFound recognises mcp-go's "tool 'x' not found" (JSON-RPC -32602),
// and the same phrase from other SDKs.
func isToolNotFound(err error) bool {
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "not found") || strings.Contains(msg, "unknown tool")
}

func isUnreachable(err error) bool {
	if errors.Is(err, transport.ErrTransportClosed) {
		return true
	}
	msg := err.Error()
	for _, s := range []string{"connection refused", "no such host", "connection reset", "EOF", "transport has been closed", "connection has been closed", "failed to start command"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// newError classifies err as Classify does, with its class as the detail.
func newError(err error, wwwAuth string) *Error {
	wire := Classify(err, wwwAuth)
	return &Error{Wire: wire, Detail: describe(err, wire.Code)}
}

// Describe is the class of an upstream failure, for logs: fixed phrases
// and numbers only, never the error's text (mcp-go puts the upstream's
// response body in its errors).
func Describe(err error) string {
	if err == nil {
		return ""
	}
	return describe(err, Classify(err, "").Code)
}

// httpStatus finds the status code mcp-go writes into its errors ("request
// failed with status 500: <body>", "unexpected status 502").
var httpStatus = regexp.MustCompile(`\bstatus (\d{3})\b`)

// rpcClasses are the JSON-RPC error classes named in a detail.
var rpcClasses = []struct {
	err  error
	name string
}{
	{mcp.ErrParseError, "json-rpc parse error"},
	{mcp.ErrInvalidRequest, "json-rpc invalid request"},
	{mcp.ErrMethodNotFound, "json-rpc method not found"},
	{mcp.ErrInvalidParams, "json-rpc invalid params"},
	{mcp.ErrInternalError, "json-rpc internal error"},
	{mcp.ErrRequestInterrupted, "json-rpc request interrupted"},
	{mcp.ErrResourceNotFound, "json-rpc resource not found"},
}

func describe(err error, code contracts.ErrorCode) string {
	parts := []string{string(code)}
	if m := httpStatus.FindStringSubmatch(err.Error()); m != nil {
		parts = append(parts, "http "+m[1])
	}
	for _, c := range rpcClasses {
		if errors.Is(err, c.err) {
			parts = append(parts, c.name)
			break
		}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		parts = append(parts, "deadline exceeded")
	case errors.Is(err, context.Canceled):
		parts = append(parts, "cancelled")
	case errors.Is(err, transport.ErrSessionTerminated):
		parts = append(parts, "session terminated")
	case isAuthRequired(err):
		parts = append(parts, "authorization required")
	case errors.Is(err, errResultTooLarge):
		parts = append(parts, "result over max_result_bytes")
	case isUnreachable(err):
		parts = append(parts, "unreachable")
	}
	return strings.Join(parts, ": ")
}

// redact removes each of the caller's credential values (and its part
// after an auth scheme such as "Bearer ") from s and bounds its length.
func redact(s string, token contracts.Token) string {
	for _, v := range token.Reveal() {
		s = strings.ReplaceAll(s, v, "[credential]")
		if _, cred, ok := strings.Cut(v, " "); ok && len(cred) >= 8 {
			s = strings.ReplaceAll(s, cred, "[credential]")
		}
	}
	if len(s) > maxDetail {
		s = strings.ToValidUTF8(s[:maxDetail], "") + "…"
	}
	return s
}
