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
	Source    string    `json:"source,omitempty"`
	CreatedAt time.Time `json:"created_at"`
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
