package frontdoor

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/telemetry"
	"github.com/toolbus/toolbus/ingress/dispatch"
	"github.com/toolbus/toolbus/ingress/jobs"
)

// Naming is how a door names tools when it names no server.
type Naming int

const (
	// Prefixed: a name is <server><sep><tool>; anything else is an unknown
	// tool (the aggregated /mcp, whose tools/list shows those names).
	Prefixed Naming = iota
	// PrefixedOrBare: <server><sep><tool>, else a bare tool name looked up
	// in the tool lists of every server the caller may use (the REST API).
	PrefixedOrBare
)

// CallInput is a tool call as a door names it.
type CallInput struct {
	// Server is the server the door names (its name, alias or LiteLLM
	// server id): server_id on the REST API, the endpoint's server on
	// /<server>/mcp. "" takes it from Name.
	Server string
	// Name is the tool's name: when Server is set, the server's own name or
	// that name prefixed <prefix><sep> (the prefix is taken off, as LiteLLM
	// does); else named as Naming says.
	Name   string
	Naming Naming
	// Within, if set, are the servers the door's selection covers (a
	// selection of several servers on /mcp/<sel>, x-mcp-servers): a name
	// must resolve to one of them.
	Within []*config.Server
	// Timeout is the budget the caller asks; 0 means the server's default.
	Timeout time.Duration
	// Arguments are the call's arguments, a JSON object (or empty): checked
	// against the server's allowed_params.
	Arguments json.RawMessage
	// Scanned, when set, is the member of the request body that Arguments
	// is, as the door's one pass over the body (contracts.ScanJSON) found
	// it: its numbers are checked from that scan, not scanned again.
	Scanned *contracts.JSONMember
}

// Call is a resolved tool call: every decision made, ready to dispatch now
// or to submit as a job.
type Call struct {
	Caller  *Caller
	Server  *config.Server
	Tool    string
	Token   contracts.Token // the credential Server receives
	Timeout time.Duration

	fp string // Token's fingerprint (TokenFP), computed by ResolveCall
}

// TokenFP is the fingerprint of the credential the server receives
// (contracts.Token.Fingerprint), computed once when the call is resolved
// for the access log and the request's header.
func (c *Call) TokenFP() string {
	if c.fp == "" {
		return c.Token.Fingerprint()
	}
	return c.fp
}

// ResolveCall finds the server and tool in names, checks the caller may
// use them (Server, CheckTool), and decides the credential and budget.
// A <server><sep><tool> name splits at the longest configured server name
// that prefixes it, whatever the key may use: a server the key may not use
// is forbidden, not another name.
func (p *Policy) ResolveCall(ctx context.Context, c *Caller, in CallInput) (*Call, *contracts.Error) {
	srv, tool, err := p.resolveName(ctx, c, in)
	if err != nil {
		return nil, err
	}
	if err := p.CheckTool(c, srv, tool); err != nil {
		return nil, err
	}
	if err := CheckArguments(srv, tool, in.Arguments); err != nil {
		return nil, err
	}
	if err := in.checkNumbers(); err != nil {
		return nil, err
	}
	telemetry.Step(ctx, telemetry.StepResolved)
	token := c.Credential(srv, Targeted)
	return &Call{Caller: c, Server: srv, Tool: tool, Token: token, Timeout: p.Budget(srv, in.Timeout), fp: token.Fingerprint()}, nil
}

func (p *Policy) resolveName(ctx context.Context, c *Caller, in CallInput) (*config.Server, string, *contracts.Error) {
	if in.Server != "" {
		srv, err := p.Server(c, in.Server)
		if err != nil {
			return nil, "", err
		}
		return srv, p.unprefixed(srv, in.Name), nil
	}
	for _, pre := range p.prefixes {
		if tool, ok := strings.CutPrefix(in.Name, pre.label+p.sep); ok && tool != "" {
			srv, err := p.Server(c, pre.server)
			if err != nil {
				return nil, "", err
			}
			if in.Within != nil && !slices.Contains(in.Within, srv) {
				return nil, "", contracts.NewError(contracts.CodeUnknownTool, "unknown tool %q: server %q is not among this endpoint's servers", Clip(in.Name), srv.Name)
			}
			return srv, tool, nil
		}
	}
	if in.Naming == Prefixed {
		return nil, "", contracts.NewError(contracts.CodeUnknownTool, "unknown tool %q: tools are named <server>%s<tool>", Clip(in.Name), p.sep)
	}
	return p.lookUpBare(ctx, c, in.Within, in.Name)
}

// unprefixed is name, a tool of srv, without a <prefix><sep> or
// <name><sep> in front (LiteLLM takes the prefix off a name called on a
// named server: litellm/proxy/_experimental/mcp_server/server.py,
// split_server_prefix_from_name).
func (p *Policy) unprefixed(srv *config.Server, name string) string {
	for _, label := range []string{srv.Prefix(), srv.Name} {
		if tool, ok := strings.CutPrefix(name, label+p.sep); ok && tool != "" {
			return tool
		}
	}
	return name
}

// lookUpBare finds the one server the caller may use that has tool. A
// server that cannot list right now (down, no worker, refuses the user) is
// skipped, and named in the answer if the tool is not found elsewhere.
func (p *Policy) lookUpBare(ctx context.Context, c *Caller, within []*config.Server, tool string) (*config.Server, string, *contracts.Error) {
	servers := within
	if servers == nil {
		servers, _ = p.Servers(c, Selection{})
	}
	var found []*config.Server
	var available, unlisted []string
	for _, l := range p.List(ctx, c, servers, FanOut) {
		if l.Err != nil {
			unlisted = append(unlisted, l.Server.Name+" ("+string(l.Err.Code)+")")
			continue
		}
		for _, t := range l.Tools {
			available = append(available, p.ToolName(l.Server, t.Name))
			if t.Name == tool {
				found = append(found, l.Server)
			}
		}
	}
	switch len(found) {
	case 0:
		e := contracts.NewError(contracts.CodeUnknownTool, "no server you may use has a tool %q", Clip(tool))
		if len(unlisted) > 0 {
			e.Message += "; could not list " + strings.Join(unlisted, ", ")
		}
		e.Available = available
		return nil, "", e
	case 1:
		return found[0], tool, nil
	default:
		e := contracts.NewError(contracts.CodeAmbiguousTool, "several servers have a tool %q: name one as <server>%s<tool> or with server_id", Clip(tool), p.sep)
		for _, s := range found {
			e.Available = append(e.Available, p.ToolName(s, tool))
		}
		return nil, "", e
	}
}

// Dispatch is the call as the dispatcher sends it, with args.
func (c *Call) Dispatch(args json.RawMessage) dispatch.Call {
	return dispatch.Call{
		KeyID: c.Caller.Key.Name, Server: c.Server.Name, Tool: c.Tool, Arguments: args,
		Token: c.Token, TokenFP: c.TokenFP(), Caller: c.Caller.Owner(), Timeout: c.Timeout,
	}
}

// Submission is the call as a job with args, owned by the caller.
// idempotencyKey is the caller's Idempotency-Key, if any.
func (c *Call) Submission(args json.RawMessage, idempotencyKey string) jobs.Submission {
	return jobs.Submission{
		KeyID: c.Caller.Key.Name, Server: c.Server.Name, Tool: c.Tool, Arguments: args,
		Owner: c.Caller.Owner(), Token: c.Token, Timeout: c.Timeout,
		IdempotencyKey: idempotencyKey,
	}
}
