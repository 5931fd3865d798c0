package demoserver_test

import (
	"context"
	"slices"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/worker/demoserver"
)

func TestStart_ResourcesPromptsCompletion(t *testing.T) {
	eachTransport(t, demoserver.Options{}, func(t *testing.T, ctx context.Context, run *demoserver.Running) {
		c := connect(t, ctx, run, nil)

		resources, err := c.ListResources(ctx, mcp.ListResourcesRequest{})
		if err != nil || len(resources.Resources) != 1 || resources.Resources[0].URI != demoserver.ResourceReadme {
			t.Fatalf("resources/list: %v %+v", err, resources)
		}
		templates, err := c.ListResourceTemplates(ctx, mcp.ListResourceTemplatesRequest{})
		if err != nil || len(templates.ResourceTemplates) != 1 {
			t.Fatalf("resources/templates/list: %v %+v", err, templates)
		}
		for uri, want := range map[string]string{demoserver.ResourceReadme: demoserver.ReadmeText, "demo://echo/abc": "abc"} {
			var req mcp.ReadResourceRequest
			req.Params.URI = uri
			res, err := c.ReadResource(ctx, req)
			if err != nil || len(res.Contents) != 1 || res.Contents[0].(mcp.TextResourceContents).Text != want {
				t.Fatalf("resources/read %s: %v %+v", uri, err, res)
			}
		}

		var get mcp.GetPromptRequest
		get.Params.Name, get.Params.Arguments = demoserver.PromptGreet, map[string]string{"name": "Ada"}
		prompt, err := c.GetPrompt(ctx, get)
		if err != nil || prompt.Messages[0].Content.(mcp.TextContent).Text != "Hello, Ada!" {
			t.Fatalf("prompts/get: %v %+v", err, prompt)
		}
		get.Params.Arguments = nil
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
