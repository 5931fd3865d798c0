// Package config is the schema of the one YAML file both toolbus processes
// read (--config FILE), with its defaults, its validation and its environment
// overrides. It accepts a LiteLLM config.yaml as is: the mcp_servers map and
// general_settings.master_key mean what they mean to LiteLLM, and every other
// LiteLLM section is ignored. toolbus's own sections (keys, nats, seal,
// ingress, worker) are optional.
//
// The package has no YAML dependency of its own: callers pass their decoder
// (yaml.Unmarshal) to Decode, which keeps this package inside the
// standard-library-only contracts tree.
package config
