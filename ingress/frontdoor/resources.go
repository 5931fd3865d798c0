package frontdoor

import (
	"encoding/json"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
)

// MCP resources, prompts and completion are covered by the key's policy as
// tools are: a key's resources and prompts lists (config.Key), and a key
// with a tools list but no such list may use none of them.

// rpcLists are the relayed list methods: the result's array, the name
// field of each item, and whether the items are resources.
var rpcLists = map[string]struct {
	field, key string // the result's array, and each item's name field
	resource   bool
}{
	"resources/list":           {"resources", "uri", true},
	"resources/templates/list": {"resourceTemplates", "uriTemplate", true},
	"prompts/list":             {"prompts", "name", false},
}

// CheckRPC refuses, as forbidden, a relayed MCP request (contracts.RPCMethods)
// the caller's key does not allow on srv: reading or subscribing to a
// resource, getting a prompt, or completing an argument of either, that
// its resources or prompts do not grant. Lists are not refused: Local
// answers them when the key may see nothing of them, and FilterRPC keeps
// what it may see.
func (p *Policy) CheckRPC(c *Caller, srv *config.Server, method string, params json.RawMessage) *contracts.Error {
	var q struct {
		URI  string `json:"uri"`
		Name string `json:"name"`
		Ref  struct {
			Type string `json:"type"`
			URI  string `json:"uri"`
			Name string `json:"name"`
		} `json:"ref"`
	}
	_ = json.Unmarshal(params, &q) // a malformed request is the upstream's to refuse; the names stay empty
	var resource, prompt string
	isResource := false
	switch method {
	case "resources/read", contracts.MethodSubscribe:
		resource, isResource = q.URI, true
	case "prompts/get":
		prompt = q.Name
	case "completion/complete":
		switch q.Ref.Type {
		case "ref/prompt":
			prompt = q.Ref.Name
		case "ref/resource":
			resource, isResource = q.Ref.URI, true
		default:
			if !c.Key.AllowsAllResources(srv.Name) || !c.Key.AllowsAllPrompts(srv.Name) {
				return contracts.NewError(contracts.CodeForbidden, "this key may not complete arguments on server %q", srv.Name)
			}
			return nil
		}
	default:
		return nil
	}
	if isResource && !c.Key.AllowsResource(srv.Name, resource) {
		return contracts.NewError(contracts.CodeForbidden, "this key may not use resource %q of server %q", Clip(resource), srv.Name)
	}
	if !isResource && !c.Key.AllowsPrompt(srv.Name, prompt) {
		return contracts.NewError(contracts.CodeForbidden, "this key may not use prompt %q of server %q", Clip(prompt), srv.Name)
	}
	return nil
}

// LocalRPC answers a list the caller's key may see nothing of (an empty
// list, without asking the upstream), and reports whether it did.
func (p *Policy) LocalRPC(c *Caller, srv *config.Server, method string) (json.RawMessage, bool) {
	l, ok := rpcLists[method]
	if !ok || p.listVisible(c, srv, method) {
		return nil, false
	}
	out, _ := json.Marshal(map[string][]any{l.field: {}})
	return out, true
}

func (p *Policy) listVisible(c *Caller, srv *config.Server, method string) bool {
	switch method {
	case "resources/list":
		return c.Key.AllowsAnyResource(srv.Name)
	case "resources/templates/list":
		return c.Key.AllowsAllResources(srv.Name) // a template names no one resource
	case "prompts/list":
		return c.Key.AllowsAnyPrompt(srv.Name)
	}
	return true
}

// FilterRPC keeps, of a list's result, the resources or prompts the
// caller's key may use; other results are returned as they are.
func (p *Policy) FilterRPC(c *Caller, srv *config.Server, method string, result json.RawMessage) json.RawMessage {
	l, ok := rpcLists[method]
	if !ok || method == "resources/templates/list" {
		return result // templates are shown whole or not at all (LocalRPC)
	}
	var obj map[string]json.RawMessage
	var items []json.RawMessage
	if json.Unmarshal(result, &obj) != nil || json.Unmarshal(obj[l.field], &items) != nil {
		return result
	}
	kept := items[:0]
	for _, raw := range items {
		var item map[string]json.RawMessage
		var name string
		if json.Unmarshal(raw, &item) != nil || json.Unmarshal(item[l.key], &name) != nil {
			continue
		}
		if l.resource && c.Key.AllowsResource(srv.Name, name) || !l.resource && c.Key.AllowsPrompt(srv.Name, name) {
			kept = append(kept, raw)
		}
	}
	obj[l.field], _ = json.Marshal(kept)
	out, err := json.Marshal(obj)
	if err != nil {
		return result
	}
	return out
}
