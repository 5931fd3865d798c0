package mcpserver_test

import (
	"testing"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/worker/demoserver"
)

// Resources, prompts, completion and subscriptions are covered by the
// key's policy. team-a is limited to the tools demo-echo and demo-whoami:
// it reads no resource of demo, gets no prompt, completes and subscribes
// to nothing, and its lists are empty. A key that opts in with resources
// and prompts lists uses what they grant, and sees only that.
func TestMCP_KeyPolicyCoversResourcesAndPrompts(t *testing.T) {
	const optedIn = "sk-opted-in"
	g := startGateway(t, func(f *config.File) {
		f.Keys = append(f.Keys, config.Key{
			Name: "opted-in", Key: optedIn, Servers: []string{"demo"}, Tools: []string{"demo-echo"},
			Resources: []string{demoserver.ResourceReadme}, Prompts: []string{"demo-" + demoserver.PromptGreet},
		})
	})
	ctx := contractstest.Ctx(t)

	limited, _ := connect(t, g.URL+"/demo/mcp", headers(teamAKey, userToken))
	opted, _ := connect(t, g.URL+"/demo/mcp", headers(optedIn, userToken))
	master, _ := connect(t, g.URL+"/demo/mcp", headers(masterKey, userToken))

	var readReq mcp.ReadResourceRequest
	readReq.Params.URI = demoserver.ResourceReadme
	var promptReq mcp.GetPromptRequest
	promptReq.Params.Name = demoserver.PromptGreet
	promptReq.Params.Arguments = map[string]string{"name": "alice"}
	var completeReq mcp.CompleteRequest
	completeReq.Params.Ref = mcp.PromptReference{Type: "ref/prompt", Name: demoserver.PromptGreet}
	completeReq.Params.Argument.Name, completeReq.Params.Argument.Value = "name", "al"
	var subReq mcp.SubscribeRequest
	subReq.Params.URI = demoserver.ResourceReadme
	var templateRead mcp.ReadResourceRequest
	templateRead.Params.URI = "demo://echo/hello"

	// The key limited to tools.
	if _, err := limited.ReadResource(ctx, readReq); err == nil {
		t.Error("limited: read a resource")
	}
	if _, err := limited.GetPrompt(ctx, promptReq); err == nil {
		t.Error("limited: got a prompt")
	}
	if _, err := limited.Complete(ctx, completeReq); err == nil {
		t.Error("limited: completed")
	}
	if err := limited.Subscribe(ctx, subReq); err == nil {
		t.Error("limited: subscribed")
	}
	if res, err := limited.ListResources(ctx, mcp.ListResourcesRequest{}); err != nil || len(res.Resources) != 0 {
		t.Errorf("limited: resources/list %+v %v, want empty", res, err)
	}
	if res, err := limited.ListResourceTemplates(ctx, mcp.ListResourceTemplatesRequest{}); err != nil || len(res.ResourceTemplates) != 0 {
		t.Errorf("limited: resources/templates/list %+v %v, want empty", res, err)
	}
	if res, err := limited.ListPrompts(ctx, mcp.ListPromptsRequest{}); err != nil || len(res.Prompts) != 0 {
		t.Errorf("limited: prompts/list %+v %v, want empty", res, err)
	}

	// The key that opted in: what its lists grant, and nothing else.
	if _, err := opted.ReadResource(ctx, readReq); err != nil {
		t.Errorf("opted in: read: %v", err)
	}
	if _, err := opted.ReadResource(ctx, templateRead); err == nil {
		t.Error("opted in: read a resource its list does not grant")
	}
	if _, err := opted.GetPrompt(ctx, promptReq); err != nil {
		t.Errorf("opted in: prompt: %v", err)
	}
	if res, err := opted.Complete(ctx, completeReq); err != nil || len(res.Completion.Values) == 0 {
		t.Errorf("opted in: complete %+v %v", res, err)
	}
	if err := opted.Subscribe(ctx, subReq); err != nil {
		t.Errorf("opted in: subscribe: %v", err)
	}
	if res, err := opted.ListResources(ctx, mcp.ListResourcesRequest{}); err != nil || len(res.Resources) != 1 || res.Resources[0].URI != demoserver.ResourceReadme {
		t.Errorf("opted in: resources/list %+v %v, want the readme", res, err)
	}
	if res, err := opted.ListPrompts(ctx, mcp.ListPromptsRequest{}); err != nil || len(res.Prompts) != 1 {
		t.Errorf("opted in: prompts/list %+v %v, want greet", res, err)
	}

	// A key without a tools list keeps every resource and prompt.
	if _, err := master.ReadResource(ctx, templateRead); err != nil {
		t.Errorf("master: read: %v", err)
	}
	if res, err := master.ListResourceTemplates(ctx, mcp.ListResourceTemplatesRequest{}); err != nil || len(res.ResourceTemplates) == 0 {
		t.Errorf("master: templates %+v %v", res, err)
	}
}
