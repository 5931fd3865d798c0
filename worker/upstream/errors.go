package upstream

import (
	"context"
	"errors"
	"strings"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/toolbus/toolbus/contracts"
)

// Error is a failed upstream call. Wire is what the caller may see; Detail
// describes the cause for the worker's own logs, with the user's credential
// removed and its length bounded (mcp-go errors can carry response bodies).
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

// newError classifies err as Classify does and keeps a redacted detail.
func newError(err error, wwwAuth string, token contracts.Token) *Error {
	return &Error{Wire: Classify(err, wwwAuth), Detail: redact(err.Error(), token)}
}

// redact removes the credential (and its part after an auth scheme such as
// "Bearer ") from s and bounds its length.
func redact(s string, token contracts.Token) string {
	if v := token.Reveal(); v != "" {
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
