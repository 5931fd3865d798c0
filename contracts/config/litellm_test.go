package config

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// docsEnv holds the variables LiteLLM's documentation configs read with
// os.environ/.
var docsEnv = map[string]string{
	"OAUTH_CLIENT_ID": "client-id-1", "OAUTH_CLIENT_SECRET": "client-secret-1",
	"GITHUB_OAUTH_CLIENT_ID": "client-id-2", "GITHUB_OAUTH_CLIENT_SECRET": "client-secret-2",
}

// credentialKeys are LiteLLM's per-server credential keys (auth_type and
// what goes with it). Where the schema has one, loading it is silent; where
// it does not, it is an unknown key.
var credentialKeys = []string{
	"auth_type", "auth_value", "authentication_token", "static_headers", "client_id", "client_secret",
	"token_url", "scopes", "oauth2_flow", "authorization_url", "registration_url",
}

// The config.yaml examples of LiteLLM's MCP documentation (testdata/litellm,
// each with its URL at the top), loaded as they are: every key is read by
// toolbus or named in a warning, and the warnings are exactly these.
func TestParse_LiteLLMDocumentationConfigs(t *testing.T) {
	tests := []struct {
		file string
		// liteLLM are the keys warned about as LiteLLM's, not implemented.
		liteLLM []string
		// credentials are credential keys present (see credentialKeys).
		credentials []string
		servers     []string
		// honoured, if set, checks what the file's keys set.
		honoured func(t *testing.T, f *File)
	}{
		{
			file:        "overview.yaml",
			liteLLM:     []string{"model_list"},
			credentials: []string{"mcp_servers.my_http_server.auth_type", "mcp_servers.my_http_server.auth_value"},
			servers:     []string{"circleci_mcp", "deepwiki_mcp", "my_http_server", "zapier_mcp"},
		},
		{
			file: "auth_types.yaml",
			credentials: []string{
				"mcp_servers.api_key_example.auth_type", "mcp_servers.api_key_example.auth_value",
				"mcp_servers.oauth2_example.auth_type", "mcp_servers.oauth2_example.token_url",
				"mcp_servers.oauth2_example.client_id", "mcp_servers.oauth2_example.client_secret",
				"mcp_servers.oauth2_example.scopes", "mcp_servers.oauth2_example.authorization_url",
				"mcp_servers.oauth2_example.registration_url",
				"mcp_servers.bearer_example.auth_type", "mcp_servers.bearer_example.auth_value",
				"mcp_servers.basic_example.auth_type", "mcp_servers.basic_example.auth_value",
				"mcp_servers.custom_auth_example.auth_type", "mcp_servers.custom_auth_example.auth_value",
				"mcp_servers.github_mcp.auth_type", "mcp_servers.github_mcp.auth_value",
				"mcp_servers.my_mcp_server.static_headers",
			},
			servers: []string{"api_key_example", "basic_example", "bearer_example", "custom_auth_example", "github_mcp", "my_mcp_server", "oauth2_example"},
			honoured: func(t *testing.T, f *File) {
				if got := f.MCPServers["github_mcp"].ExtraHeaders; !slices.Equal(got, []string{"custom_key", "x-custom-header"}) {
					t.Errorf("extra_headers: %v", got)
				}
			},
		},
		{
			file:        "oauth_os_environ.yaml",
			credentials: []string{"mcp_servers.github_mcp.auth_type", "mcp_servers.github_mcp.client_id", "mcp_servers.github_mcp.client_secret"},
			servers:     []string{"github_mcp"},
		},
		{
			file: "allowed_tools.yaml",
			credentials: []string{
				"mcp_servers.github_mcp.authorization_url",
				"mcp_servers.github_mcp.auth_type", "mcp_servers.github_mcp.token_url", "mcp_servers.github_mcp.client_id",
				"mcp_servers.github_mcp.client_secret", "mcp_servers.github_mcp.scopes",
			},
			servers: []string{"github_mcp"},
			honoured: func(t *testing.T, f *File) {
				s := f.MCPServers["github_mcp"]
				if !s.ToolAllowed("list_tools") || s.ToolAllowed("create_issue") {
					t.Error("allowed_tools [list_tools] not applied")
				}
			},
		},
		{
			file:        "access_groups.yaml",
			liteLLM:     []string{"mcp_servers.deepwiki_mcp.spec_version"},
			credentials: []string{"mcp_servers.deepwiki_mcp.auth_type"},
			servers:     []string{"deepwiki_mcp"},
			honoured: func(t *testing.T, f *File) {
				if got := f.AccessGroups(); !slices.Equal(got["dev_group"], []string{"deepwiki_mcp"}) {
					t.Errorf("access groups %v, want dev_group: [deepwiki_mcp]", got)
				}
			},
		},
		{
			file:        "allowed_params.yaml",
			credentials: []string{"mcp_servers.deepwiki_mcp.auth_type"},
			servers:     []string{"deepwiki_mcp"},
			honoured: func(t *testing.T, f *File) {
				s := f.MCPServers["deepwiki_mcp"]
				if p, ok := s.AllowedParamsOf("read_wiki_contents"); !ok || !slices.Equal(p, []string{"status"}) {
					t.Errorf("allowed_params of read_wiki_contents: %v %v", p, ok)
				}
				if got := s.ForbiddenParams("read_wiki_contents", []string{"status", "limit"}); !slices.Equal(got, []string{"limit"}) {
					t.Errorf("forbidden params %v, want [limit] (LiteLLM's documented refusal)", got)
				}
			},
		},
		{
			file:    "client_side_auth_header.yaml",
			liteLLM: []string{"model_list"},
			honoured: func(t *testing.T, f *File) {
				if got := f.GeneralSettings.ClientSideAuthHeader(); got != "authorization" {
					t.Errorf("mcp_client_side_auth_header_name: %q", got)
				}
			},
		},
		{
			file:    "db_storage.yaml",
			liteLLM: []string{"general_settings.store_model_in_db", "general_settings.supported_db_objects", "model_list"},
		},
		{
			file: "openapi.yaml",
			liteLLM: []string{
				"model_list", "mcp_servers.petstore_mcp.spec_path", "mcp_servers.my_api_mcp.spec_path",
				"mcp_servers.secured_api_mcp.spec_path",
			},
			credentials: []string{
				"mcp_servers.petstore_mcp.auth_type", "mcp_servers.my_api_mcp.auth_type", "mcp_servers.my_api_mcp.auth_value",
				"mcp_servers.secured_api_mcp.auth_type", "mcp_servers.secured_api_mcp.auth_value",
			},
			servers: []string{"my_api_mcp", "petstore_mcp", "secured_api_mcp"},
		},
		{
			file:    "stdio_strands.yaml",
			servers: []string{"strands_mcp"},
		},
	}
	files, err := filepath.Glob("testdata/litellm/*.yaml")
	if err != nil || len(files) != len(tests) {
		t.Fatalf("%d files in testdata/litellm, %d in the table (%v)", len(files), len(tests), err)
	}
	serverFields := fieldsOf(reflect.TypeFor[Server]())
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata/litellm", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(data), "# LiteLLM ") || !strings.Contains(strings.SplitN(string(data), "\n", 3)[1], "https://") {
				t.Error("the file does not start with the documentation's name and URL")
			}
			f, warnings, err := Parse(data, Options{Getenv: mapEnv(docsEnv)})
			if err != nil {
				t.Fatal(err)
			}
			if got := f.ServerNames(); !slices.Equal(got, tt.servers) && !(len(got) == 0 && len(tt.servers) == 0) {
				t.Errorf("servers %v, want %v", got, tt.servers)
			}
			if tt.honoured != nil {
				tt.honoured(t, f)
			}

			want := map[string]string{}
			for _, p := range tt.liteLLM {
				want[p] = "LiteLLM key not implemented by toolbus, "
			}
			for _, p := range tt.credentials {
				key := p[strings.LastIndex(p, ".")+1:]
				if !slices.Contains(credentialKeys, key) {
					t.Fatalf("%s is not a credential key", p)
				}
				if _, known := serverFields[key]; !known {
					want[p] = "unknown key: toolbus does not read it"
				}
			}
			got := map[string]string{}
			for _, w := range warnings {
				got[w.Path] = w.Message
			}
			for p, prefix := range want {
				if !strings.HasPrefix(got[p], prefix) {
					t.Errorf("%s: warning %q, want one starting %q", p, got[p], prefix)
				}
			}
			for p, msg := range got {
				if _, ok := want[p]; !ok {
					t.Errorf("unexpected warning %s: %s", p, msg)
				}
			}
			// Independently of the walker: every key of the file is in the
			// schema, or it or a key above it has a warning.
			var doc yaml.Node
			if err := yaml.Unmarshal(data, &doc); err != nil {
				t.Fatal(err)
			}
			for _, p := range keyPaths(doc.Content[0], fileType, "") {
				if !warnedAt(got, p.path) && !p.known {
					t.Errorf("%s is neither read by toolbus nor named in a warning", p.path)
				}
			}
		})
	}
}

type keyPath struct {
	path  string
	known bool
}

// keyPaths lists every key under n, and whether type t (the schema) has it.
// It does not go below a key the schema does not have, nor into a map's
// values that are not structs.
func keyPaths(n *yaml.Node, t reflect.Type, path string) []keyPath {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	var out []keyPath
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, value := n.Content[i].Value, n.Content[i+1]
		p := joinPath(path, key)
		switch t.Kind() {
		case reflect.Struct:
			ft, ok := fieldsOf(t)[key]
			out = append(out, keyPath{p, ok})
			if ok {
				out = append(out, keyPaths(value, ft, p)...)
			}
		case reflect.Map:
			out = append(out, keyPaths(value, t.Elem(), p)...)
		}
	}
	return out
}

func warnedAt(warnings map[string]string, path string) bool {
	for p := path; ; {
		if _, ok := warnings[p]; ok {
			return true
		}
		i := strings.LastIndex(p, ".")
		if i < 0 {
			return false
		}
		p = p[:i]
	}
}

func mapEnv(m map[string]string) func(string) string {
	return func(name string) string { return m[name] }
}

// The table names keys toolbus does not implement: none of them is a field
// of the schema (a key that becomes one leaves the table).
func TestLiteLLMKeys_NotInSchema(t *testing.T) {
	for _, path := range LiteLLMKeys() {
		typ := fileType
		segments := strings.Split(path, ".")
		for i, seg := range segments {
			for typ.Kind() == reflect.Pointer {
				typ = typ.Elem()
			}
			if seg == "*" {
				if typ.Kind() != reflect.Map {
					t.Errorf("%s: * where the schema has no map", path)
					break
				}
				typ = typ.Elem()
				continue
			}
			if typ.Kind() != reflect.Struct {
				t.Errorf("%s: %s under a value that has no keys", path, seg)
				break
			}
			ft, ok := fieldsOf(typ)[seg]
			last := i == len(segments)-1
			if last && ok {
				t.Errorf("%s is in the schema: remove it from liteLLMKeys", path)
			}
			if !ok {
				if !last {
					if _, listed := LiteLLMInstead(strings.Join(segments[:i+1], ".")); !listed {
						t.Errorf("%s: %s is neither in the schema nor in the table", path, strings.Join(segments[:i+1], "."))
					}
				}
				break
			}
			typ = ft
		}
	}
}

// docs/configuration.md lists every LiteLLM key toolbus does not implement.
func TestLiteLLMKeys_Documented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range LiteLLMKeys() {
		if !strings.Contains(string(doc), "`"+path+"`") {
			t.Errorf("docs/configuration.md does not list `%s`", path)
		}
	}
}
