package demoserver

import (
	"context"
	"fmt"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// Tools that ask the client something during the call.
const (
	// ToolAsk asks the user a question (elicitation/create) and returns the
	// answer.
	ToolAsk = "ask"
	// ToolSample asks the client's model to complete a prompt
	// (sampling/createMessage) and returns the completion.
	ToolSample = "sample"
)

// inputKey names the one input request of ask and sample.
const inputKey = "answer"

// addAskTools registers ask and sample. They are written for both MCP eras:
// a 2026 client gets an input_required result and calls again with the
// answer; for an older client mcp-go sends the request to the client during
// the call and calls the handler again with the answer.
func addAskTools(s *server.MCPServer, t tools) {
	s.AddTool(mcp.NewTool(ToolAsk,
		mcp.WithDescription("Asks the user a question (MCP elicitation) and returns the answer."),
		mcp.WithString("question", mcp.Description("The question; default: What is your name?")),
	), t.opts.Calls.count(t.ask))
	s.AddTool(mcp.NewTool(ToolSample,
		mcp.WithDescription("Asks the client's model to complete a prompt (MCP sampling) and returns the completion."),
		mcp.WithString("prompt", mcp.Required(), mcp.Description("The prompt.")),
	), t.opts.Calls.count(t.sample))
}

// sessionLacks reports whether the calling client speaks a protocol with
// sessions and did not declare the capability (has says whether caps has
// it): a server must not send it such a request, which would wait for an
// answer that never comes. A 2026 client gets an input_required result,
// which it answers or refuses itself.
func sessionLacks(ctx context.Context, has func(mcp.ClientCapabilities) bool) bool {
	if mcp.IsModernProtocol(server.RequestProtocolVersion(ctx)) {
		return false
	}
	ci, ok := server.ClientSessionFromContext(ctx).(server.SessionWithClientInfo)
	return ok && !has(ci.GetClientCapabilities())
}

func (t tools) ask(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	answer := server.ElicitationResponse(req.Params.InputResponses, inputKey)
	if answer == nil && sessionLacks(ctx, func(c mcp.ClientCapabilities) bool { return c.Elicitation != nil }) {
		return mcp.NewToolResultError("ask needs a client that supports elicitation"), nil
	}
	if answer == nil {
		return server.NewInputRequestBuilder("").Elicit(inputKey, mcp.ElicitationParams{
			Message: req.GetString("question", "What is your name?"),
			RequestedSchema: map[string]any{
				"type":       "object",
				"properties": map[string]any{"answer": map[string]any{"type": "string", "description": "Your answer."}},
				"required":   []string{"answer"},
			},
		}).ToolResult(), nil
	}
	if answer.Action != mcp.ElicitationResponseActionAccept {
		return mcp.NewToolResultText("the user chose " + string(answer.Action)), nil
	}
	content, _ := answer.Content.(map[string]any)
	return mcp.NewToolResultText(fmt.Sprintf("answer: %v", content["answer"])), nil
}

func (t tools) sample(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	prompt, err := req.RequireString("prompt")
	if err != nil {
		return mcp.NewToolResultError(err.Error()), nil
	}
	answer := server.SamplingResponse(req.Params.InputResponses, inputKey)
	if answer == nil && sessionLacks(ctx, func(c mcp.ClientCapabilities) bool { return c.Sampling != nil }) {
		return mcp.NewToolResultError("sample needs a client that supports sampling"), nil
	}
	if answer == nil {
		return server.NewInputRequestBuilder("").Sample(inputKey, mcp.CreateMessageParams{
			Messages:  []mcp.SamplingMessage{{Role: mcp.RoleUser, Content: mcp.NewTextContent(prompt)}},
			MaxTokens: 256,
		}).ToolResult(), nil
	}
	text := ""
	if c, ok := answer.Content.(mcp.TextContent); ok {
		text = c.Text
	} else if m, ok := answer.Content.(map[string]any); ok {
		text, _ = m["text"].(string)
	}
	return mcp.NewToolResultText(fmt.Sprintf("%s: %s", answer.Model, text)), nil
}
