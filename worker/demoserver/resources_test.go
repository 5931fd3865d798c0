package demoserver_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/worker/demoserver"
)

func TestStart_ResourcesPromptsCompletion(t *testing.T) {
	eachTransport(t, demoserver.Options{}, func(t *testing.T, ctx context.Context, run *demoserver.Running) {
		c := connect(t, ctx, run, nil)

		if err := demoserver.CheckSurface(ctx, c); err != nil {
			t.Fatal(err)
		}
		var get mcp.GetPromptRequest
		get.Params.Name = demoserver.PromptGreet
		if _, err := c.GetPrompt(ctx, get); err == nil {
			t.Fatal("greet without a name succeeded")
		}

		var complete mcp.CompleteRequest
		complete.Params.Ref = mcp.PromptReference{Type: "ref/prompt", Name: demoserver.PromptGreet}
		complete.Params.Argument.Name, complete.Params.Argument.Value = "name", "b"
		res, err := c.Complete(ctx, complete)
		if err != nil || !slices.Equal(res.Completion.Values, []string{"bob"}) {
			t.Fatalf("completion/complete: %v %+v", err, res)
		}
	})
}

func TestStart_SlowLogsWithProgress(t *testing.T) {
	ctx := contractstest.Ctx(t)
	c := connect(t, ctx, start(t, demoserver.Options{}, demoserver.TransportHTTP), nil)
	logs := make(chan mcp.JSONRPCNotification, 16)
	c.OnNotification(func(n mcp.JSONRPCNotification) {
		if n.Method == string(mcp.MethodNotificationMessage) {
			logs <- n
		}
	})
	req := mcp.CallToolRequest{}
	req.Params.Name, req.Params.Arguments = demoserver.ToolSlow, map[string]any{"ms": 100}
	req.Params.Meta = &mcp.Meta{ProgressToken: "p"}
	if _, err := c.CallTool(ctx, req); err != nil {
		t.Fatal(err)
	}
	if len(logs) < 3 {
		t.Fatalf("%d log notifications, want one per step (the last may race the answer)", len(logs))
	}
}

// wrongSurface answers every request, but not as a demo server does.
type wrongSurface struct{ demoserver.SurfaceClient }

func (wrongSurface) ListResources(context.Context, mcp.ListResourcesRequest) (*mcp.ListResourcesResult, error) {
	return &mcp.ListResourcesResult{Resources: []mcp.Resource{{URI: "demo://other"}}}, nil
}

func TestCheckSurface_FindsADifference(t *testing.T) {
	if err := demoserver.CheckSurface(contractstest.Ctx(t), wrongSurface{}); err == nil || !strings.Contains(err.Error(), "resources/list") {
		t.Fatalf("CheckSurface = %v, want the resources/list difference", err)
	}
}
