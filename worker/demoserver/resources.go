package demoserver

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// Resources, resource templates and prompts of the demo server, so that a
// whole MCP server (not only its tools) can be tested through a gateway.
const (
	// ResourceReadme is a static text resource.
	ResourceReadme = "demo://readme"
	// ReadmeText is its content.
	ReadmeText = "toolbus demo server: tools echo, whoami, slow, fail, big, ask, sample, touch; this resource (subscribable); the template demo://echo/{text}; the prompt greet."
	// ResourceEchoTemplate is a resource template: demo://echo/{text}
	// reads as text.
	ResourceEchoTemplate = "demo://echo/{text}"
	// PromptGreet is a prompt with one required argument, name, which
	// completion/complete suggests values for (CompletionNames).
	PromptGreet = "greet"
)

// CompletionNames are the values completion/complete offers for greet's
// name argument (those starting with the typed prefix).
var CompletionNames = []string{"alice", "albert", "bob", "carol"}

func addResourcesAndPrompts(s *server.MCPServer) {
	s.AddResource(mcp.NewResource(ResourceReadme, "readme",
		mcp.WithResourceDescription("What the demo server offers."), mcp.WithMIMEType("text/plain")),
		func(context.Context, mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
			return []mcp.ResourceContents{mcp.TextResourceContents{URI: ResourceReadme, MIMEType: "text/plain", Text: ReadmeText}}, nil
		})
	s.AddResourceTemplate(mcp.NewResourceTemplate(ResourceEchoTemplate, "echo",
		mcp.WithTemplateDescription("Reads as the text in its URI."), mcp.WithTemplateMIMEType("text/plain")),
		func(_ context.Context, req mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
			text, ok := strings.CutPrefix(req.Params.URI, "demo://echo/")
			if !ok {
				return nil, fmt.Errorf("not an echo resource: %q", req.Params.URI)
			}
			return []mcp.ResourceContents{mcp.TextResourceContents{URI: req.Params.URI, MIMEType: "text/plain", Text: text}}, nil
		})
	s.AddPrompt(mcp.NewPrompt(PromptGreet,
		mcp.WithPromptDescription("Greets someone by name."),
		mcp.WithArgument("name", mcp.ArgumentDescription("Who to greet."), mcp.RequiredArgument())),
		func(_ context.Context, req mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			name := req.Params.Arguments["name"]
			if name == "" {
				return nil, fmt.Errorf("%w: name is required", mcp.ErrInvalidParams)
			}
			return &mcp.GetPromptResult{
				Description: "A greeting",
				Messages:    []mcp.PromptMessage{{Role: mcp.RoleUser, Content: mcp.NewTextContent("Hello, " + name + "!")}},
			}, nil
		})
}

// completions completes greet's name argument from CompletionNames.
type completions struct{}

func (completions) CompletePromptArgument(_ context.Context, prompt string, arg mcp.CompleteArgument, _ mcp.CompleteContext) (*mcp.Completion, error) {
	values := []string{}
	if prompt == PromptGreet && arg.Name == "name" {
		for _, n := range CompletionNames {
			if strings.HasPrefix(n, arg.Value) {
				values = append(values, n)
			}
		}
	}
	return &mcp.Completion{Values: slices.Clip(values), Total: len(values)}, nil
}
