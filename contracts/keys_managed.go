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
