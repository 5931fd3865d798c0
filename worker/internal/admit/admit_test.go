package admit_test

import (
	"testing"
	"time"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/worker/internal/admit"
	"github.com/toolbus/toolbus/worker/internal/workertest"
)

func TestAdmitter_Admit(t *testing.T) {
	t.Parallel()
	keys := workertest.NewKeys(t)
	cfg := workertest.Config(t, map[string]*config.Server{
		"demo": {URL: "http://127.0.0.1:1/mcp", DisallowedTools: []string{"delete"}, Timeout: config.Duration(time.Second), MaxTimeout: config.Duration(2 * time.Second)},
		"open": {URL: "http://127.0.0.1:1/mcp", Auth: config.AuthNone},
		"svc":  {URL: "http://127.0.0.1:1/mcp", Credentials: config.Credentials{AuthType: "api_key", AuthValue: "k"}},
		// LiteLLM's filters, with and without the <server>- prefix.
		"lit": {URL: "http://127.0.0.1:1/mcp", AllowedTools: []string{"lit-echo", "fail"}, DisallowedTools: []string{"lit-fail"}},
	}, config.Worker{})
	const reply, token = "_INBOX.r.1", "Bearer admit-me"
	call := func(server, tool string, keys workertest.Keys) *contracts.CallRequest {
		return keys.Request(t, workertest.Call{Server: server, Tool: tool, Token: token, Timeout: 5 * time.Second}, reply)
	}
	request := func(subject string, req *contracts.CallRequest) admit.Request {
		return admit.Request{Header: &req.RequestHeader, Kind: contracts.SubjectCall, Subject: subject, Tool: req.Tool, Binding: req.Binding(reply)}
	}

	t.Run("admits with the opened token and the bounded budget", func(t *testing.T) {
		a := &admit.Admitter{File: cfg, Opener: keys.Opener, Replay: contracts.NewReplayGuard()}
		got, refusal := a.Admit(request(contracts.CallSubject("demo"), call("demo", "echo", keys)))
		if refusal != nil || got.Server.Name != "demo" || got.Token.Reveal()[contracts.HeaderAuthorization] != token || got.Timeout != 2*time.Second {
			t.Fatalf("got %+v, %+v", got, refusal)
		}
	})
	for _, tt := range []struct {
		name string
		in   admit.Request
		want contracts.ErrorCode
	}{
		{"sealed, on another server's subject", request(contracts.CallSubject("open"), call("demo", "echo", keys)), contracts.CodeSealInvalid},
		{"on a subject of another kind", request(contracts.ListSubject("demo"), call("demo", "echo", keys)), contracts.CodeSealInvalid},
		{"unknown server", request(contracts.CallSubject("nope"), call("nope", "echo", keys)), contracts.CodeUnknownServer},
		{"tool not allowed", request(contracts.CallSubject("demo"), call("demo", "delete", keys)), contracts.CodeForbidden},
		{"tool allowed bare, disallowed prefixed", request(contracts.CallSubject("lit"), call("lit", "fail", keys)), contracts.CodeForbidden},
		{"tool outside a prefixed allowed_tools", request(contracts.CallSubject("lit"), call("lit", "whoami", keys)), contracts.CodeForbidden},
		{"sealed to another key", request(contracts.CallSubject("demo"), call("demo", "echo", workertest.NewKeys(t))), contracts.CodeSealInvalid},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := &admit.Admitter{File: cfg, Opener: keys.Opener, Replay: contracts.NewReplayGuard()}
			if _, refusal := a.Admit(tt.in); refusal == nil || refusal.Err.Code != tt.want || refusal.Reason == "" {
				t.Fatalf("got %+v, want %s with a reason", refusal, tt.want)
			}
		})
	}
	t.Run("a prefixed allowed_tools entry admits the bare tool", func(t *testing.T) {
		a := &admit.Admitter{File: cfg, Opener: keys.Opener, Replay: contracts.NewReplayGuard()}
		if _, refusal := a.Admit(request(contracts.CallSubject("lit"), call("lit", "echo", keys))); refusal != nil {
			t.Fatalf("refused: %+v", refusal)
		}
	})
	t.Run("moved without a token is invalid_request", func(t *testing.T) {
		req := keys.Request(t, workertest.Call{Server: "demo", Tool: "echo"}, reply)
		a := &admit.Admitter{File: cfg, Opener: keys.Opener}
		if _, refusal := a.Admit(request(contracts.CallSubject("open"), req)); refusal == nil || refusal.Err.Code != contracts.CodeInvalidRequest {
			t.Fatalf("got %+v, want invalid_request", refusal)
		}
	})
	t.Run("auth none never opens the token", func(t *testing.T) {
		a := &admit.Admitter{File: cfg, Opener: keys.Opener}
		got, refusal := a.Admit(request(contracts.CallSubject("open"), call("open", "echo", workertest.NewKeys(t))))
		if refusal != nil || !got.Token.IsZero() {
			t.Fatalf("got %+v, %+v; want admitted without a token", got, refusal)
		}
	})
	t.Run("a server with its own credential never gets the caller's Authorization", func(t *testing.T) {
		a := &admit.Admitter{File: cfg, Opener: keys.Opener}
		got, refusal := a.Admit(request(contracts.CallSubject("svc"), call("svc", "echo", keys)))
		if refusal != nil || !got.Token.IsZero() {
			t.Fatalf("got %+v, %+v; want admitted without a token", got, refusal)
		}
	})
	t.Run("a replay guard refuses the second use; without one it opens again", func(t *testing.T) {
		req := call("demo", "echo", keys)
		guarded := &admit.Admitter{File: cfg, Opener: keys.Opener, Replay: contracts.NewReplayGuard()}
		unguarded := &admit.Admitter{File: cfg, Opener: keys.Opener}
		for i := range 2 {
			if _, refusal := unguarded.Admit(request(contracts.CallSubject("demo"), req)); refusal != nil {
				t.Fatalf("unguarded use %d: %+v", i, refusal)
			}
		}
		if _, refusal := guarded.Admit(request(contracts.CallSubject("demo"), req)); refusal != nil {
			t.Fatalf("first use: %+v", refusal)
		}
		if _, refusal := guarded.Admit(request(contracts.CallSubject("demo"), req)); refusal == nil || refusal.Reason != "replayed" {
			t.Fatalf("second use: %+v, want replayed", refusal)
		}
	})
}
