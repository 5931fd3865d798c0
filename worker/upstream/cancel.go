package upstream

import (
	"context"
	"time"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

// cancelNotifyTimeout bounds sending a notifications/cancelled.
const cancelNotifyTimeout = 5 * time.Second

// cancellingSSE is mcp-go's SSE transport, plus a notifications/cancelled for
// a request whose context ends before its response. mcp-go's client sends
// one only over stdio; over SSE the response comes on the stream, so giving
// up on it cancels nothing and the tool would run on upstream. Embedding
// keeps every other method (and the interfaces mcp-go asserts) of *SSE.
type cancellingSSE struct {
	*transport.SSE
}

func (t *cancellingSSE) SendRequest(ctx context.Context, req transport.JSONRPCRequest) (*transport.JSONRPCResponse, error) {
	resp, err := t.SSE.SendRequest(ctx, req)
	// The transport races its own timer against ctx's deadline, so
	// ctx.Err() may not be set yet: check the deadline too.
	if ctxErr := contextErr(ctx); err != nil && ctxErr != nil &&
		req.Method != string(mcp.MethodInitialize) && req.Method != string(mcp.MethodServerDiscover) {
		n := mcp.JSONRPCNotification{
			JSONRPC: mcp.JSONRPC_VERSION,
			Notification: mcp.Notification{
				Method: string(mcp.MethodNotificationCancelled),
				Params: mcp.NotificationParams{
					AdditionalFields: map[string]any{"requestId": req.ID, "reason": ctxErr.Error()},
				},
			},
		}
		// Off the caller's path, which already has its error; best effort.
		go func() {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cancelNotifyTimeout)
			defer cancel()
			_ = t.SSE.SendNotification(ctx, n)
		}()
	}
	return resp, err
}
