// Package config is the schema of the one YAML file both toolbus processes
// read (--config FILE), with its defaults, its validation and its environment
// overrides. It accepts a LiteLLM config.yaml as is: the mcp_servers map and
// general_settings.master_key mean what they mean to LiteLLM, and os.environ/
// NAME values are read from the environment; toolbus's own sections (keys,
// nats, seal, ingress, worker, jobs, tracing) are optional.
//
// ReadFile and Parse read a file in one pass over its YAML tree, alongside
// the File type (load.go, schema.go): os.environ/NAME values are resolved in
// every string the schema reads; a key the schema does not have is a
// Warning (with what toolbus does instead when it is one of LiteLLM's keys,
// litellm.go), an error under Options.Strict or strict: true; a value of the
// wrong type is an error naming its path. No error or warning carries a
// value. The warnings are returned, never logged here: the binaries log them
// at start-up and their check subcommands print them.
//
// Every default is documented at its field and applied in one place,
// Normalize, which Parse calls: a loaded *File is complete, and components
// read it as it is. A File built by hand (tests, dev mode) is completed by
// calling Normalize; it may be called again after a change. Each component
// reads its own section (Worker, Ingress, Jobs, an MCPServers entry).
//
// Secrets are marked in the schema with a struct tag, secret:"true" or
// secret:"url" (redact.go); WriteEffective, what check prints, redacts them.
package config
