// Package auth checks gateway keys and decides which servers and tools a key
// may use. Keys are held as SHA-256 hashes and compared in constant time; the
// plaintext of a configured key is never kept. OIDC (oidc.go) verifies the
// JWT access tokens of configured issuers, whose callers are principals too.
package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
)

// Header names that carry the gateway key. Authorization is read as one
// only when neither is present (LiteLLM's fallback; see Find).
const (
	HeaderKey           = "x-litellm-key"
	HeaderAPIKey        = "x-litellm-api-key"
	HeaderAuthorization = "Authorization"
)

// The key headers' canonical names (http.CanonicalHeaderKey), the keys of
// a request's header map: a look-up by them allocates nothing.
const (
	headerKeyCanonical    = "X-Litellm-Key"
	headerAPIKeyCanonical = "X-Litellm-Api-Key"
)

// maxKeyLen bounds a presented key before it is hashed.
const maxKeyLen = 512

// Principal is an authenticated gateway key.
type Principal struct {
	// Name is the key's configured name: its id in logs, messages and jobs.
	Name    string
	hash    [sha256.Size]byte
	servers map[string]bool            // nil: all
	refs    map[contracts.ToolRef]bool // nil: see tools; else the (server, tool) pairs allowed
	tools   map[string]bool            // with refs nil: nil all, else <server><sep><tool> names (a managed key from an older toolbus)
	sep     string                     // the tool separator (ingress.tool_separator)
	// resources and prompts are what the key may use of servers' MCP
	// resources and prompts (grants.go); nil: everything.
	resources, prompts *grants
	// Limits are the key's own fair share (keys[].limits, or a managed
	// key's record); unset fields take ingress.key_limits (ingress/limits).
	Limits contracts.KeyLimits
	// IdentityLimits are the share of each caller identity within the key
	// (keys[].identity_limits, or a managed key's record); unset fields
	// take ingress.identity_limits (ingress/limits).
	IdentityLimits contracts.KeyLimits
}

// AllowsServer reports whether the key may use server.
func (p *Principal) AllowsServer(server string) bool {
	return p.servers == nil || p.servers[server]
}

// AllowsTool reports whether the key may call tool on server.
func (p *Principal) AllowsTool(server, tool string) bool {
	if !p.AllowsServer(server) {
		return false
	}
	if p.refs != nil {
		return p.refs[contracts.ToolRef{Server: server, Tool: tool}]
	}
	return p.tools == nil || p.tools[server+p.sep+tool]
}

// Keys is the set of gateway keys: the configured ones (fixed after New)
// and the managed ones kept in step with the KeysBucket by Watch.
type Keys struct {
	byHash map[[sha256.Size]byte]*Principal // configured
	sep    string                           // the tool separator of keys' tool lists

	mu      sync.RWMutex
	managed map[[sha256.Size]byte]*Principal
	// groups are the servers of each access group (config.File.AccessGroups),
	// which managed keys' access_groups name.
	groups map[string][]string
}

// UseAccessGroups sets the servers of each access group that managed keys'
// access_groups name (config.File.AccessGroups). Call it before Watch.
func (k *Keys) UseAccessGroups(groups map[string][]string) {
	k.mu.Lock()
	k.groups = groups
	k.mu.Unlock()
}

// managedServers is the servers of a managed key: its servers and those of
// its access groups; empty (all) only when it names neither.
func (k *Keys) managedServers(mk *contracts.ManagedKey) []string {
	if len(mk.AccessGroups) == 0 {
		return mk.Servers
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	out := slices.Clone(mk.Servers)
	for _, g := range mk.AccessGroups {
		out = append(out, k.groups[g]...)
	}
	if len(out) == 0 {
		out = []string{"/"} // groups with no server here: no server, not all
	}
	return out
}

// New builds the key set from the configuration (keys are already hashed by
// config.Normalize). Keys' tool lists name tools <server><toolSeparator><tool>
// (ingress.tool_separator; "" means config.DefaultToolSeparator).
func New(keys []config.Key, toolSeparator string) (*Keys, error) {
	if toolSeparator == "" {
		toolSeparator = config.DefaultToolSeparator
	}
	k := &Keys{byHash: make(map[[sha256.Size]byte]*Principal, len(keys)), sep: toolSeparator, managed: map[[sha256.Size]byte]*Principal{}}
	for _, c := range keys {
		raw, err := hex.DecodeString(c.KeySHA256)
		if err != nil || len(raw) != sha256.Size {
			return nil, contracts.NewError(contracts.CodeInvalidRequest, "key %q: key_sha256 is not a SHA-256 hex digest", c.Name)
		}
		refs, resolved := c.ToolRefs()
		p := newPrincipal(c.Name, [sha256.Size]byte(raw), c.Servers, c.Tools, k.sep)
		if resolved {
			p.setRefs(refs)
		}
		res, resRestricted := c.ResourceRefs()
		prompts, promptsRestricted := c.PromptRefs()
		p.resources, p.prompts = newGrants(res, resRestricted), newGrants(prompts, promptsRestricted)
		p.Limits, p.IdentityLimits = c.Limits, c.IdentityLimits
		k.byHash[p.hash] = p
	}
	return k, nil
}

func newPrincipal(name string, hash [sha256.Size]byte, servers, tools []string, sep string) *Principal {
	p := &Principal{Name: name, hash: hash, sep: sep}
	if len(servers) > 0 {
		p.servers = toSet(servers)
	}
	if len(tools) > 0 {
		p.tools = toSet(tools)
	}
	return p
}

// setRefs makes the key's tools the (server, tool) pairs refs (none when
// empty), which config resolved without ambiguity: a name such as
// pyup-x-secret is never compared as a string.
func (p *Principal) setRefs(refs []contracts.ToolRef) {
	p.refs = make(map[contracts.ToolRef]bool, len(refs))
	for _, r := range refs {
		p.refs[r] = true
	}
	p.tools = nil
}

func toSet(items []string) map[string]bool {
	s := make(map[string]bool, len(items))
	for _, i := range items {
		s[i] = true
	}
	return s
}

// Authenticate finds the key presented in h (see Find).
func (k *Keys) Authenticate(h http.Header) (*Principal, *contracts.Error) {
	p, _, err := k.Find(h)
	return p, err
}

// Find finds the key presented in h: in x-litellm-key, else
// x-litellm-api-key, else, when neither is present, in Authorization
// (LiteLLM's fallback; inAuthorization reports it, and the caller then
// forwards that Authorization to no server). It returns an unauthorized
// error, never naming or echoing the presented value, when there is none or
// it is unknown. A key header that is present but wrong is refused: the
// fallback is not tried.
func (k *Keys) Find(h http.Header) (p *Principal, inAuthorization bool, err *contracts.Error) {
	presented := Presented(h)
	if presented == "" && h.Get(headerKeyCanonical) == "" && h.Get(headerAPIKeyCanonical) == "" {
		if presented = bearer(h.Get(HeaderAuthorization)); presented != "" {
			inAuthorization = true
		}
	}
	if presented == "" {
		return nil, false, contracts.NewError(contracts.CodeUnauthorized, "missing gateway key: send it in the x-litellm-key header")
	}
	if p = k.lookUp(presented); p == nil {
		msg := "invalid gateway key"
		if inAuthorization {
			msg = "missing gateway key: send it in the x-litellm-key header (the Authorization header is not a gateway key)"
		}
		return nil, false, contracts.NewError(contracts.CodeUnauthorized, "%s", msg)
	}
	return p, inAuthorization, nil
}

// lookUp is the key whose plaintext is presented, or nil.
func (k *Keys) lookUp(presented string) *Principal {
	if len(presented) > maxKeyLen {
		return nil
	}
	sum := sha256.Sum256([]byte(presented))
	p, ok := k.byHash[sum]
	if !ok {
		k.mu.RLock()
		p, ok = k.managed[sum]
		k.mu.RUnlock()
	}
	// The map finds the entry by hash; compare the whole digest once more in
	// constant time so no code path branches on a partial match.
	if !ok || subtle.ConstantTimeCompare(sum[:], p.hash[:]) != 1 {
		return nil
	}
	return p
}

// Presented returns the gateway key a request carries, from x-litellm-key or
// else x-litellm-api-key, without an optional "Bearer " prefix.
func Presented(h http.Header) string {
	v := h.Get(headerKeyCanonical)
	if v == "" {
		v = h.Get(headerAPIKeyCanonical)
	}
	return bearer(v)
}

// bearer is v without an optional "Bearer " prefix.
func bearer(v string) string {
	v = strings.TrimSpace(v)
	if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
		v = strings.TrimSpace(v[7:])
	}
	return v
}
