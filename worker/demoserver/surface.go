package demoserver

import (
	"context"
	"fmt"
	"slices"

	"github.com/mark3labs/mcp-go/mcp"
)

// SurfaceClient is what CheckSurface asks through: an MCP client session
// (mcp-go's *client.Client is one).
type SurfaceClient interface {
	ListResources(context.Context, mcp.ListResourcesRequest) (*mcp.ListResourcesResult, error)
	ListResourceTemplates(context.Context, mcp.ListResourceTemplatesRequest) (*mcp.ListResourceTemplatesResult, error)
	ReadResource(context.Context, mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error)
	ListPrompts(context.Context, mcp.ListPromptsRequest) (*mcp.ListPromptsResult, error)
	GetPrompt(context.Context, mcp.GetPromptRequest) (*mcp.GetPromptResult, error)
	Complete(context.Context, mcp.CompleteRequest) (*mcp.CompleteResult, error)
}

// CheckSurface checks, through c, what a demo server offers besides its
// tools: its resource (read), its resource template (read as
// demo://echo/hello), its prompt (greet for Ada) and the completion of the
// prompt's argument (al: alice, albert). It returns the first difference,
// nil when there is none: the same check holds for a demo server reached
// directly and through a gateway.
func CheckSurface(ctx context.Context, c SurfaceClient) error {
	resources, err := c.ListResources(ctx, mcp.ListResourcesRequest{})
	if err != nil || len(resources.Resources) != 1 || resources.Resources[0].URI != ResourceReadme {
		return fmt.Errorf("resources/list: %v %+v", err, resources)
	}
	templates, err := c.ListResourceTemplates(ctx, mcp.ListResourceTemplatesRequest{})
	if err != nil || len(templates.ResourceTemplates) != 1 {
		return fmt.Errorf("resources/templates/list: %v %+v", err, templates)
	}
	for uri, want := range map[string]string{ResourceReadme: ReadmeText, "demo://echo/hello": "hello"} {
		var req mcp.ReadResourceRequest
		req.Params.URI = uri
		res, err := c.ReadResource(ctx, req)
		if err != nil || len(res.Contents) != 1 {
			return fmt.Errorf("resources/read %s: %v %+v", uri, err, res)
		}
		if text, ok := res.Contents[0].(mcp.TextResourceContents); !ok || text.Text != want {
			return fmt.Errorf("resources/read %s: %+v, want text %q", uri, res.Contents[0], want)
		}
	}
	prompts, err := c.ListPrompts(ctx, mcp.ListPromptsRequest{})
	if err != nil || len(prompts.Prompts) != 1 || prompts.Prompts[0].Name != PromptGreet {
		return fmt.Errorf("prompts/list: %v %+v", err, prompts)
	}
	var get mcp.GetPromptRequest
	get.Params.Name, get.Params.Arguments = PromptGreet, map[string]string{"name": "Ada"}
	prompt, err := c.GetPrompt(ctx, get)
	if err != nil || len(prompt.Messages) != 1 {
		return fmt.Errorf("prompts/get: %v %+v", err, prompt)
	}
	if text, ok := prompt.Messages[0].Content.(mcp.TextContent); !ok || text.Text != "Hello, Ada!" {
		return fmt.Errorf("prompts/get: %+v, want Hello, Ada!", prompt.Messages[0].Content)
	}
	var complete mcp.CompleteRequest
	complete.Params.Ref = mcp.PromptReference{Type: "ref/prompt", Name: PromptGreet}
	complete.Params.Argument.Name, complete.Params.Argument.Value = "name", "al"
	completion, err := c.Complete(ctx, complete)
	if err != nil || !slices.Equal(completion.Completion.Values, []string{"alice", "albert"}) {
		return fmt.Errorf("completion/complete: %v %+v", err, completion)
	}
	return nil
}
