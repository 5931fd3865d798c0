// Package config is the schema of the one YAML file both toolbus processes
// read (--config FILE), with its defaults, its validation and its environment
// overrides. It accepts a LiteLLM config.yaml as is: the mcp_servers map and
// general_settings.master_key mean what they mean to LiteLLM, and every other
// LiteLLM section is ignored. toolbus's own sections (keys, nats, seal,
// ingress, worker) are optional.
//
// Every default is documented at its field and applied in one place,
// Normalize, which Load and Decode call: a loaded *File is complete, and
// components read it as it is. A File built by hand (tests, dev mode) is
// completed by calling Normalize; it may be called again after a change.
// Each component reads its own section (Worker, Ingress, Jobs, an
// MCPServers entry).
//
// The package has no YAML dependency of its own: callers pass their decoder
// (yaml.Unmarshal) to Decode, which keeps this package inside the
// standard-library-only contracts tree.
package config
