package contracts

import (
	"encoding/json"
	"time"
)

// TypeManagedKey is the type of a ManagedKey record.
const TypeManagedKey = "toolbus.key.v1"

// ManagedKey is a gateway key created at run time, stored in KeysBucket
// under the hex SHA-256 of the key. It never holds the key itself.
type ManagedKey struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Servers []string `json:"servers,omitempty"`
	Tools   []string `json:"tools,omitempty"`
	// AccessGroups grant the key every server of each group, as the
	// ingress's configuration declares the groups when it reads the key.
	AccessGroups []string `json:"access_groups,omitempty"`
	// Source says where the key came from when it was not created by
	// toolbus ("litellm": imported from a LiteLLM virtual key).
	Source string `json:"source,omitempty"`
	// ToolRefs is Tools resolved to (server, tool) pairs when the key was
	// created: what the ingress checks. A record without it (made by an
	// older toolbus) is checked by Tools' names.
	ToolRefs []ToolRef `json:"tool_refs,omitempty"`
	// ResourceRefs and PromptRefs are the resources (URI patterns) and
	// prompts the key may use; without them a key with tools may use none,
	// a key without tools every one.
	ResourceRefs []ToolRef `json:"resource_refs,omitempty"`
	PromptRefs   []ToolRef `json:"prompt_refs,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	// Limits, if set, are the key's own fair share (unset fields take the
	// ingress's defaults).
	Limits *KeyLimits `json:"limits,omitempty"`
	// IdentityLimits, if set, are the share of each caller identity within
	// the key (unset fields take ingress.identity_limits).
	IdentityLimits *KeyLimits `json:"identity_limits,omitempty"`
}

// KeyLimits is a gateway key's fair share of the gateway (ingress/limits),
// counted across ingress replicas: each replica enforces its share, the
// limit divided by the live replicas. 0 means the default
// (ingress.key_limits), a negative value no limit. Over a limit a request
// is answered 429 rate_limited with Retry-After. The configuration's
// keys[].limits and ingress.key_limits, and a managed key's record, have
// this shape.
type KeyLimits struct {
	// MaxRequests bounds the key's API requests in flight (a request holds
	// its slot once its body is read).
	MaxRequests int `json:"max_requests,omitempty" yaml:"max_requests"`
	// MaxServerCalls bounds the key's synchronous calls in flight to any
	// one server.
	MaxServerCalls int `json:"max_server_calls,omitempty" yaml:"max_server_calls"`
	// MaxStreams bounds the key's long-lived requests: MCP GET streams
	// (standalone and legacy SSE) and long polls (?wait=).
	MaxStreams int `json:"max_streams,omitempty" yaml:"max_streams"`
	// RequestsPerSecond is the key's sustained request rate, with bursts of
	// up to Burst requests (0: the rate, at least 1).
	RequestsPerSecond float64 `json:"requests_per_second,omitempty" yaml:"requests_per_second"`
	Burst             int     `json:"burst,omitempty" yaml:"burst"`
}

// Or returns l with every unset (zero) field taken from d.
func (l KeyLimits) Or(d KeyLimits) KeyLimits {
	if l.MaxRequests == 0 {
		l.MaxRequests = d.MaxRequests
	}
	if l.MaxServerCalls == 0 {
		l.MaxServerCalls = d.MaxServerCalls
	}
	if l.MaxStreams == 0 {
		l.MaxStreams = d.MaxStreams
	}
	if l.RequestsPerSecond == 0 {
		l.RequestsPerSecond = d.RequestsPerSecond
	}
	if l.Burst == 0 {
		l.Burst = d.Burst
	}
	return l
}

// DecodeManagedKey decodes a ManagedKey.
func DecodeManagedKey(data []byte) (*ManagedKey, error) {
	var k ManagedKey
	if err := json.Unmarshal(data, &k); err != nil {
		return nil, badMessage("%v", err)
	}
	if k.Type != TypeManagedKey || k.Name == "" || len(k.Name) > maxIDLen {
		return nil, badMessage("not a managed key")
	}
	return &k, nil
}

// ToolRef is one tool of one server: what an entry of a key's tool list
// denotes once resolved (a prefixed name names one server's tool; a bare
// name, that tool on each server the key may use).
type ToolRef struct {
	Server string `json:"server"`
	Tool   string `json:"tool"`
}
