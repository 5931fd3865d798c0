package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/ingress/auth"
)

// A LiteLLM virtual-key export: rows of LiteLLM_VerificationToken joined
// with their LiteLLM_ObjectPermissionTable (schema.prisma in BerriAI/litellm),
// as JSON (an array of objects) or CSV with a header row. The columns read:
//
//	token                 the hex SHA-256 of the key (LiteLLM stores no key itself)
//	key_alias, key_name   the key's name here: key_alias, else key_name, else litellm-<token[:12]>
//	blocked               true: the key is refused (not imported; revoked if imported before)
//	expires               a past time: as blocked
//	mcp_servers           the servers the key may use: LiteLLM server ids (or names, aliases)
//	mcp_access_groups     access groups the key may use
//	mcp_tool_permissions  {"<server id>": ["tool", ...]}: the key's tools on that server
//
// The permission columns may also come nested as object_permission: {...}
// (LiteLLM's /key/list shape). Other columns are ignored. In CSV, arrays are
// PostgreSQL array literals ({a,b}) or JSON arrays, mcp_tool_permissions
// JSON.

// liteLLMRow is one row of the export, as read.
type liteLLMRow struct {
	line               int
	Token              string          `json:"token"`
	KeyAlias           *string         `json:"key_alias"`
	KeyName            *string         `json:"key_name"`
	Blocked            json.RawMessage `json:"blocked"`
	Expires            *string         `json:"expires"`
	MCPServers         []string        `json:"mcp_servers"`
	MCPAccessGroups    []string        `json:"mcp_access_groups"`
	MCPToolPermissions json.RawMessage `json:"mcp_tool_permissions"`
	ObjectPermission   *struct {
		MCPServers         []string        `json:"mcp_servers"`
		MCPAccessGroups    []string        `json:"mcp_access_groups"`
		MCPToolPermissions json.RawMessage `json:"mcp_tool_permissions"`
	} `json:"object_permission"`
}

// importPlan is what an export imports: the keys to store and the hashes
// of blocked or expired keys to revoke.
type importPlan struct {
	keys   []auth.Import
	revoke []string
	// notes say, per row, what happens to the key (no secret: names only).
	notes []string
}

// parseLiteLLMExport reads an export (JSON or CSV) into rows, reporting
// every row it cannot read by its line.
func parseLiteLLMExport(data []byte) ([]liteLLMRow, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		return parseJSONExport(data)
	}
	return parseCSVExport(data)
}

func parseJSONExport(data []byte) ([]liteLLMRow, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	lineAt := func(offset int64) int { return 1 + bytes.Count(data[:offset], []byte("\n")) }
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return nil, errors.New("line 1: not a JSON array of keys")
	}
	var rows []liteLLMRow
	var errs []error
	for dec.More() {
		start := dec.InputOffset()
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			errs = append(errs, fmt.Errorf("line %d: %v", lineAt(start), err))
			return nil, errors.Join(errs...)
		}
		// The element starts after the separator and blanks before it.
		skipped := len(data[start:]) - len(bytes.TrimLeft(data[start:], " \t\r\n,"))
		line := lineAt(start + int64(skipped))
		var row liteLLMRow
		if err := json.Unmarshal(raw, &row); err != nil {
			errs = append(errs, fmt.Errorf("line %d: %v", line, err))
			continue
		}
		row.line = line
		rows = append(rows, row)
	}
	return rows, errors.Join(errs...)
}

func parseCSVExport(data []byte) ([]liteLLMRow, error) {
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if err != nil {
		return nil, errors.New("line 1: not a CSV header (want token, key_alias, ... as psql's \\copy ... CSV HEADER writes)")
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.TrimSpace(strings.ToLower(h))] = i
	}
	if _, ok := col["token"]; !ok {
		return nil, errors.New("line 1: the header has no token column")
	}
	var rows []liteLLMRow
	var errs []error
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			errs = append(errs, err) // csv.ParseError names its line
			break
		}
		line, _ := r.FieldPos(0)
		get := func(name string) (string, bool) {
			i, ok := col[name]
			if !ok || i >= len(rec) {
				return "", false
			}
			return rec[i], true
		}
		row := liteLLMRow{line: line}
		row.Token, _ = get("token")
		if v, ok := get("key_alias"); ok && v != "" {
			row.KeyAlias = &v
		}
		if v, ok := get("key_name"); ok && v != "" {
			row.KeyName = &v
		}
		if v, ok := get("blocked"); ok && v != "" {
			row.Blocked = json.RawMessage(strconv.Quote(v))
		}
		if v, ok := get("expires"); ok && v != "" {
			row.Expires = &v
		}
		var rowErr error
		for _, f := range []struct {
			name string
			dst  *[]string
		}{{"mcp_servers", &row.MCPServers}, {"mcp_access_groups", &row.MCPAccessGroups}} {
			if v, ok := get(f.name); ok && v != "" {
				if *f.dst, err = parseArray(v); err != nil {
					rowErr = fmt.Errorf("line %d: %s: %v", line, f.name, err)
				}
			}
		}
		if v, ok := get("mcp_tool_permissions"); ok && v != "" {
			row.MCPToolPermissions = json.RawMessage(v)
		}
		if rowErr != nil {
			errs = append(errs, rowErr)
			continue
		}
		rows = append(rows, row)
	}
	return rows, errors.Join(errs...)
}

// parseArray reads a PostgreSQL array literal ({a,"b c"}) or a JSON array
// of strings.
func parseArray(v string) ([]string, error) {
	v = strings.TrimSpace(v)
	if strings.HasPrefix(v, "[") {
		var out []string
		err := json.Unmarshal([]byte(v), &out)
		return out, err
	}
	if !strings.HasPrefix(v, "{") || !strings.HasSuffix(v, "}") {
		return nil, errors.New("not an array ({a,b} or [\"a\",\"b\"])")
	}
	body := v[1 : len(v)-1]
	var out []string
	for len(body) > 0 {
		var item string
		if body[0] == '"' {
			end, sb := 1, strings.Builder{}
			for ; end < len(body) && body[end] != '"'; end++ {
				if body[end] == '\\' && end+1 < len(body) {
					end++
				}
				sb.WriteByte(body[end])
			}
			if end >= len(body) {
				return nil, errors.New("an unterminated quoted element")
			}
			item, body = sb.String(), body[end+1:]
		} else {
			i := strings.IndexByte(body, ',')
			if i < 0 {
				i = len(body)
			}
			item, body = body[:i], body[i:]
			if item == "NULL" {
				return nil, errors.New("a NULL element")
			}
		}
		out = append(out, item)
		if body = strings.TrimPrefix(body, ","); len(body) > 0 && body[0] == '}' {
			return nil, errors.New("a malformed array")
		}
	}
	return out, nil
}

// planImport turns rows into managed keys: every problem of every row is
// reported (by line) and nothing is planned unless every row is good.
// unrestrictedAll says what a key without MCP permissions may use: every
// server (true) or none (false, the default).
func planImport(cfg *config.File, rows []liteLLMRow, unrestrictedAll bool, now time.Time) (*importPlan, error) {
	plan := &importPlan{}
	var errs []error
	names := map[string]int{}
	hashes := map[string]int{}
	groups := cfg.AccessGroups()
	configured := map[string]bool{}
	for _, k := range cfg.Keys {
		configured[k.Name] = true
	}
	for _, row := range rows {
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("line %d: "+format, append([]any{row.line}, args...)...))
		}
		hash := strings.ToLower(strings.TrimSpace(row.Token))
		if strings.HasPrefix(hash, "sk-") {
			// An unhashed key (older LiteLLM versions kept some): store its hash.
			sum := sha256.Sum256([]byte(strings.TrimSpace(row.Token)))
			hash = hex.EncodeToString(sum[:])
		}
		if raw, err := hex.DecodeString(hash); err != nil || len(raw) != sha256.Size {
			bad("token is not LiteLLM's hashed key (64 hex digits)")
			continue
		}
		if first, dup := hashes[hash]; dup {
			bad("the same key as line %d", first)
			continue
		}
		hashes[hash] = row.line
		name := ""
		switch {
		case row.KeyAlias != nil && strings.TrimSpace(*row.KeyAlias) != "":
			name = strings.TrimSpace(*row.KeyAlias)
		case row.KeyName != nil && strings.TrimSpace(*row.KeyName) != "":
			name = strings.TrimSpace(*row.KeyName)
		default:
			name = "litellm-" + hash[:12]
		}
		blocked, err := parseBool(row.Blocked)
		if err != nil {
			bad("blocked: %v", err)
			continue
		}
		expired := false
		if row.Expires != nil && strings.TrimSpace(*row.Expires) != "" {
			at, err := parseTime(*row.Expires)
			if err != nil {
				bad("expires: %v", err)
				continue
			}
			expired = !at.After(now)
		}
		if blocked || expired {
			why := "blocked"
			if !blocked {
				why = "expired"
			}
			plan.revoke = append(plan.revoke, hash)
			plan.notes = append(plan.notes, fmt.Sprintf("line %d: %q is %s: not imported (revoked if it was)", row.line, name, why))
			continue
		}
		if first, dup := names[name]; dup {
			bad("the name %q is also line %d's (give the keys distinct key_alias)", name, first)
			continue
		}
		names[name] = row.line
		if configured[name] {
			bad("the name %q is a key of the configuration file", name)
			continue
		}
		servers, keyGroups, perms := row.MCPServers, row.MCPAccessGroups, row.MCPToolPermissions
		if op := row.ObjectPermission; op != nil {
			servers = append(slices.Clone(servers), op.MCPServers...)
			keyGroups = append(slices.Clone(keyGroups), op.MCPAccessGroups...)
			if len(perms) == 0 {
				perms = op.MCPToolPermissions
			}
		}
		rec := contracts.ManagedKey{Name: name, Source: "litellm"}
		rowOK := true
		for _, ref := range servers {
			srv, ok := cfg.ServerRef(ref)
			if !ok {
				bad("mcp_servers: %q is no server of the configuration (by LiteLLM server id, name or alias)", ref)
				rowOK = false
				continue
			}
			rec.Servers = append(rec.Servers, srv)
		}
		for _, g := range keyGroups {
			if _, ok := groups[g]; !ok {
				bad("mcp_access_groups: no server of the configuration declares the access group %q", g)
				rowOK = false
				continue
			}
			rec.AccessGroups = append(rec.AccessGroups, g)
		}
		if tools, refs, err := toolPermissions(cfg, perms); err != nil {
			bad("mcp_tool_permissions: %v", err)
			rowOK = false
		} else {
			rec.Tools, rec.ToolRefs = tools, refs // the pairs are what the ingress checks
		}
		if !rowOK {
			continue
		}
		scope := "servers " + strings.Join(rec.Servers, ",")
		if len(rec.AccessGroups) > 0 {
			scope += " access groups " + strings.Join(rec.AccessGroups, ",")
		}
		if len(rec.Servers) == 0 && len(rec.AccessGroups) == 0 {
			scope = "every server"
			if !unrestrictedAll {
				// LiteLLM gives a key without MCP permissions no server
				// (unless a server sets allow_all_keys): the same here.
				rec.Servers = []string{"/"}
				scope = "no server (it has no MCP permission; --unrestricted all grants every server)"
			}
		}
		slices.Sort(rec.Servers)
		rec.Servers = slices.Compact(rec.Servers)
		plan.keys = append(plan.keys, auth.Import{Hash: hash, Record: rec})
		plan.notes = append(plan.notes, fmt.Sprintf("line %d: %q: %s", row.line, name, strings.TrimSpace(scope)))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return plan, nil
}

// toolPermissions reads mcp_tool_permissions ({"<server id>": [tools]})
// into <server><separator><tool> names.
func toolPermissions(cfg *config.File, raw json.RawMessage) ([]string, []contracts.ToolRef, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil, nil
	}
	var perms map[string][]string
	if err := json.Unmarshal(raw, &perms); err != nil {
		return nil, nil, errors.New(`not {"<server id>": ["tool", ...]}`)
	}
	var out []string
	var refs []contracts.ToolRef
	for ref, tools := range perms {
		srv, ok := cfg.ServerRef(ref)
		if !ok {
			return nil, nil, fmt.Errorf("%q is no server of the configuration", ref)
		}
		for _, t := range tools {
			out = append(out, srv+cfg.Ingress.Separator()+t)
			refs = append(refs, contracts.ToolRef{Server: srv, Tool: t})
		}
	}
	slices.Sort(out)
	slices.SortFunc(refs, func(a, b contracts.ToolRef) int {
		return strings.Compare(a.Server+"\x00"+a.Tool, b.Server+"\x00"+b.Tool)
	})
	return out, refs, nil
}

func parseBool(raw json.RawMessage) (bool, error) {
	v := strings.TrimSpace(string(raw))
	if v == "" || v == "null" {
		return false, nil
	}
	if unq, err := strconv.Unquote(v); err == nil {
		v = unq
	}
	switch strings.ToLower(v) {
	case "true", "t", "1", "yes":
		return true, nil
	case "false", "f", "0", "no", "":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean", v)
}

// parseTime reads a timestamp as PostgreSQL or JSON writes it.
func parseTime(v string) (time.Time, error) {
	v = strings.TrimSpace(v)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999Z07", "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a timestamp", v)
}
