package upstream

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/toolbus/toolbus/contracts"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	rpc := func(code int, msg string) error {
		return (&mcp.JSONRPCErrorDetails{Code: code, Message: msg}).AsError()
	}
	tests := []struct {
		name string
		err  error
		want contracts.ErrorCode
	}{
		{"401", transport.NewError(&transport.AuthorizationRequiredError{}), contracts.CodeUpstreamUnauthorized},
		{"deadline", fmt.Errorf("failed to send request: %w", context.DeadlineExceeded), contracts.CodeUpstreamTimeout},
		{"cancelled", context.Canceled, contracts.CodeTimeout},
		{"unknown tool", rpc(mcp.INVALID_PARAMS, "tool 'x' not found: tool not found"), contracts.CodeUnknownTool},
		{"bad arguments", rpc(mcp.INVALID_PARAMS, "missing text"), contracts.CodeInvalidRequest},
		{"unparsable request (arguments the server cannot decode)", rpc(mcp.INVALID_REQUEST, "unparsable tools/call request"), contracts.CodeInvalidRequest},
		{"parse error", rpc(mcp.PARSE_ERROR, "parse error"), contracts.CodeInvalidRequest},
		{"internal", rpc(mcp.INTERNAL_ERROR, "boom"), contracts.CodeUpstreamError},
		{"session", fmt.Errorf("x: %w", transport.ErrSessionTerminated), contracts.CodeUpstreamError},
		{"refused", errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), contracts.CodeUpstreamError},
		{"wire", contracts.NewError(contracts.CodeOverloaded, "busy"), contracts.CodeOverloaded},
	}
	for _, tt := range tests {
		if got := Classify(tt.err, "").Code; got != tt.want {
			t.Errorf("%s: Classify(%v) = %s, want %s", tt.name, tt.err, got, tt.want)
		}
	}
	if got := Classify(transport.ErrAuthorizationRequired, `Bearer realm="x"`); got.WWWAuthenticate != `Bearer realm="x"` {
		t.Errorf("WWWAuthenticate = %q", got.WWWAuthenticate)
	}
	if Classify(nil, "") != nil {
		t.Error("Classify(nil) != nil")
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	tok := contracts.NewToken("Bearer s3cr3t-value")
	got := redact("request failed with status 500: echo Bearer s3cr3t-value and s3cr3t-value", tok)
	if strings.Contains(got, "s3cr3t") {
		t.Errorf("redact left the credential: %q", got)
	}
	long := redact(strings.Repeat("é", 1000), contracts.Token{})
	if len(long) > maxDetail+len("…") || !strings.HasSuffix(long, "…") {
		t.Errorf("redact did not bound the length: %d bytes", len(long))
	}
}
