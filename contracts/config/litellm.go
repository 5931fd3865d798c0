package config

import "slices"

// liteLLMKey is a key of LiteLLM's config.yaml that toolbus does not
// implement, and what happens instead.
type liteLLMKey struct{ instead string }

// liteLLMKeys is the one table of LiteLLM's config keys toolbus does not
// implement, by path (* stands for a server's name). Loading a file that has
// one is a warning naming the key and saying what toolbus does instead (an
// error under strict). A key toolbus implements is a field of File, never an
// entry here (TestLiteLLMKeys_NotInSchema); docs/configuration.md lists the
// same keys (TestLiteLLMKeys_Documented).
//
// Sources: LiteLLM's MCP documentation (docs.litellm.ai/docs/mcp,
// mcp_control, mcp_config_reference) and its proxy config settings
// (docs.litellm.ai/docs/proxy/config_settings).
var liteLLMKeys = map[string]liteLLMKey{
	// Top-level sections of LiteLLM's proxy.
	"model_list":            {"ignored: toolbus is a tool-call gateway and serves no models"},
	"router_settings":       {"ignored: toolbus routes tool calls by server name, over NATS"},
	"environment_variables": {"ignored: set the variables in the process's environment (os.environ/NAME reads them)"},
	"guardrails":            {"ignored: toolbus runs no guardrails on tool calls"},
	"credential_list":       {"ignored: a server's credentials are set on the server in mcp_servers"},
	"callback_settings":     {"ignored: toolbus exports OpenTelemetry traces (tracing:) and Prometheus metrics"},
	"mcp_tools":             {"ignored: tools come from the servers in mcp_servers"},
	"include":               {"ignored: no other file is read; put its sections in this file"},
	"files_settings":        {"ignored: toolbus serves no files API"},
	"finetune_settings":     {"ignored: toolbus serves no fine-tuning API"},
	"assistant_settings":    {"ignored: toolbus serves no assistants API"},
	"vector_store_registry": {"ignored: toolbus serves no vector stores"},
	"search_tools":          {"ignored: toolbus serves no search API"},

	// litellm_settings keys about MCP (mcp_aliases is read; every other key
	// of the section is named by liteLLMSectionRest).
	"litellm_settings.mcp_semantic_tool_filter": {"ignored: tools/list returns every tool the key may use"},

	// general_settings: master_key is read; these are not.
	"general_settings.store_model_in_db":                {"ignored: toolbus has no database; servers come from this file"},
	"general_settings.supported_db_objects":             {"ignored: toolbus has no database; servers come from this file"},
	"general_settings.database_url":                     {"ignored: toolbus has no database; keys are in keys: or managed with `ingress keys`"},
	"general_settings.database_connection_pool_limit":   {"ignored: toolbus has no database"},
	"general_settings.database_connection_timeout":      {"ignored: toolbus has no database"},
	"general_settings.allow_requests_on_db_unavailable": {"ignored: toolbus has no database"},
	"general_settings.disable_spend_logs":               {"ignored: toolbus keeps no spend logs"},
	"general_settings.alerting":                         {"ignored: toolbus sends no alerts; use its metrics"},
	"general_settings.alerting_threshold":               {"ignored: toolbus sends no alerts; use its metrics"},
	"general_settings.proxy_batch_write_at":             {"ignored: toolbus has no database"},
	"general_settings.ui_access_mode":                   {"ignored: toolbus has no admin UI"},
	"general_settings.custom_auth":                      {"ignored: gateway keys are checked by toolbus (keys:, master_key)"},
	"general_settings.allowed_routes":                   {"ignored: every toolbus route needs a gateway key"},

	// mcp_servers.<name> keys.
	"mcp_servers.*.spec_version":   {"ignored: toolbus speaks protocol_version to the server (default 2025-11-25)"},
	"mcp_servers.*.allow_all_keys": {"ignored: a key without servers: may use every server; list this server in a restricted key's servers"},
	"mcp_servers.*.spec_path":      {"ignored: OpenAPI specs are not turned into MCP tools; url must be an MCP endpoint"},
}

// liteLLMSectionRest says what happens to the keys of a LiteLLM section
// that toolbus reads only in part, other than those it reads and those
// liteLLMKeys names.
var liteLLMSectionRest = map[string]liteLLMKey{
	"litellm_settings": {"ignored: these settings are for LiteLLM's model calls (toolbus reads mcp_aliases only)"},
}

// LiteLLMKeys returns the paths of the LiteLLM keys toolbus does not
// implement, sorted (* stands for a server's name).
func LiteLLMKeys() []string {
	keys := make([]string, 0, len(liteLLMKeys))
	for k := range liteLLMKeys {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// LiteLLMInstead says what toolbus does instead of the LiteLLM key at path
// (as LiteLLMKeys names it), and whether it is one.
func LiteLLMInstead(path string) (string, bool) {
	k, ok := liteLLMKeys[path]
	return k.instead, ok
}
