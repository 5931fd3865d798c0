package demoserver

import (
	"context"
	"fmt"
	"sync"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// ToolTouch announces that a resource changed: every session subscribed to
// it (resources/subscribe) gets notifications/resources/updated.
const ToolTouch = "touch"

// Subscriptions are a demo server's resource subscriptions: URI → session
// ids. Its zero value is ready to use; set Options.Subscriptions to watch
// them from a test.
type Subscriptions struct {
	mu    sync.Mutex
	byURI map[string]map[string]bool
	srv   *server.MCPServer
}

// Subscribed returns how many resource subscriptions the server holds (for
// tests: an unsubscription through a gateway must reach it).
func (s *Subscriptions) Subscribed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, sessions := range s.byURI {
		n += len(sessions)
	}
	return n
}

func (s *Subscriptions) hooks() *server.Hooks {
	h := &server.Hooks{}
	h.AddAfterSubscribe(func(ctx context.Context, _ any, req *mcp.SubscribeRequest, _ *mcp.EmptyResult) {
		if cs := server.ClientSessionFromContext(ctx); cs != nil {
			s.set(req.Params.URI, cs.SessionID(), true)
		}
	})
	h.AddAfterUnsubscribe(func(ctx context.Context, _ any, req *mcp.UnsubscribeRequest, _ *mcp.EmptyResult) {
		if cs := server.ClientSessionFromContext(ctx); cs != nil {
			s.set(req.Params.URI, cs.SessionID(), false)
		}
	})
	h.AddOnUnregisterSession(func(_ context.Context, cs server.ClientSession) {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, sessions := range s.byURI {
			delete(sessions, cs.SessionID())
		}
	})
	return h
}

func (s *Subscriptions) set(uri, session string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byURI == nil {
		s.byURI = make(map[string]map[string]bool)
	}
	if s.byURI[uri] == nil {
		s.byURI[uri] = make(map[string]bool)
	}
	if on {
		s.byURI[uri][session] = true
	} else {
		delete(s.byURI[uri], session)
	}
}

func (s *Subscriptions) touch(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	uri, err := req.RequireString("uri")
	if err != nil {
		return mcp.NewToolResultError(err.Error()), nil
	}
	s.mu.Lock()
	var sessions []string
	for id := range s.byURI[uri] {
		sessions = append(sessions, id)
	}
	s.mu.Unlock()
	sent := 0
	for _, id := range sessions {
		if s.srv.SendNotificationToSpecificClient(id, string(mcp.MethodNotificationResourceUpdated), map[string]any{"uri": uri}) == nil {
			sent++
		}
	}
	return mcp.NewToolResultText(fmt.Sprintf("notified %d subscriber(s)", sent)), nil
}
