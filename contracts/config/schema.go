package config

import (
	"encoding"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// The schema is the File type itself: its yaml tags name every key toolbus
// reads (a struct embedded with `yaml:",inline"` adds its keys to its
// parent's, a field tagged `yaml:"-"` is not read from the file). Nothing
// else lists the keys, so a field added to a struct is known at once.

var fileType = reflect.TypeFor[File]()

// maxDepth bounds the walk (aliases may point back up the tree).
const maxDepth = 64

// walker walks the YAML tree alongside the schema: it resolves
// os.environ/NAME values in every string the schema reads, reports keys the
// schema does not have (as warnings) and values of the wrong type (as
// errors), with their paths and never their values.
type walker struct {
	getenv   func(string) string
	warnings []Warning
	errs     []error
}

func (w *walker) errorf(format string, args ...any) {
	w.errs = append(w.errs, fmt.Errorf(format, args...))
}

// walk checks node n against type t. path is where n is (mcp_servers.jira),
// pattern the same with map keys as * (mcp_servers.*), for the LiteLLM table.
func (w *walker) walk(n *yaml.Node, t reflect.Type, path, pattern string, depth int) {
	if depth > maxDepth {
		w.errorf("%s: nested too deeply", path)
		return
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias != nil {
			w.walk(n.Alias, t, path, pattern, depth+1)
		}
		return
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // null is the zero value of every type
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if isTextValue(t) {
		w.scalar(n, t, path)
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if !w.want(n, yaml.MappingNode, path, "a mapping") {
			return
		}
		fields := fieldsOf(t)
		w.mapping(n, path, func(key string, value *yaml.Node) {
			ft, ok := fields[key]
			if !ok {
				w.unknown(joinPath(path, key), joinPath(pattern, key), value, fields)
				return
			}
			w.walk(value, ft, joinPath(path, key), joinPath(pattern, key), depth+1)
		}, depth)
	case reflect.Map:
		if !w.want(n, yaml.MappingNode, path, "a mapping") {
			return
		}
		w.mapping(n, path, func(key string, value *yaml.Node) {
			w.walk(value, t.Elem(), joinPath(path, key), joinPath(pattern, "*"), depth+1)
		}, depth)
	case reflect.Slice, reflect.Array:
		if !w.want(n, yaml.SequenceNode, path, "a list") {
			return
		}
		for i, item := range n.Content {
			w.walk(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i), pattern+"[]", depth+1)
		}
	case reflect.Interface:
		w.resolveAll(n, path, depth)
	default:
		w.scalar(n, t, path)
	}
}

// mapping calls each for every key of a mapping node, following merge keys
// (<<: *defaults) into the mapping they name.
func (w *walker) mapping(n *yaml.Node, path string, each func(key string, value *yaml.Node), depth int) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			w.errorf("%s: a key that is not a name", path)
			continue
		}
		if k.Value == "<<" && k.ShortTag() == "!!merge" {
			w.merge(v, path, each, depth)
			continue
		}
		each(k.Value, v)
	}
}

func (w *walker) merge(v *yaml.Node, path string, each func(string, *yaml.Node), depth int) {
	if depth > maxDepth {
		w.errorf("%s: nested too deeply", path)
		return
	}
	switch v.Kind {
	case yaml.AliasNode:
		if v.Alias != nil {
			w.merge(v.Alias, path, each, depth+1)
		}
	case yaml.MappingNode:
		w.mapping(v, path, each, depth+1)
	case yaml.SequenceNode:
		for _, item := range v.Content {
			w.merge(item, path, each, depth+1)
		}
	}
}

// want reports whether n is of kind k, recording an error if not.
func (w *walker) want(n *yaml.Node, k yaml.Kind, path, what string) bool {
	if n.Kind == k {
		return true
	}
	w.errorf("%s: want %s, not %s", path, what, describe(n))
	return false
}

// scalar checks a value that should be one scalar of type t, resolving
// os.environ/NAME first.
func (w *walker) scalar(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind != yaml.ScalarNode {
		w.errorf("%s: want %s, not %s", path, scalarName(t), describe(n))
		return
	}
	w.resolveEnv(n, path)
	if n.ShortTag() == "!!null" {
		return
	}
	if isTextValue(t) {
		u, ok := reflect.New(t).Interface().(encoding.TextUnmarshaler)
		if ok && u.UnmarshalText([]byte(n.Value)) != nil {
			w.errorf("%s: want %s", path, scalarName(t))
		}
		return
	}
	tag := n.ShortTag()
	ok := true
	switch t.Kind() {
	case reflect.String:
		ok = tag != "!!binary"
	case reflect.Bool:
		ok = tag == "!!bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		ok = tag == "!!int"
	case reflect.Float32, reflect.Float64:
		ok = tag == "!!int" || tag == "!!float"
	}
	if !ok {
		w.errorf("%s: want %s, not %s", path, scalarName(t), describe(n))
	}
}

// resolveAll resolves os.environ/NAME in every string under n (a value the
// schema takes as is).
func (w *walker) resolveAll(n *yaml.Node, path string, depth int) {
	if depth > maxDepth {
		return
	}
	switch n.Kind {
	case yaml.ScalarNode:
		w.resolveEnv(n, path)
	case yaml.MappingNode:
		w.mapping(n, path, func(key string, v *yaml.Node) { w.resolveAll(v, joinPath(path, key), depth+1) }, depth)
	case yaml.SequenceNode:
		for i, item := range n.Content {
			w.resolveAll(item, fmt.Sprintf("%s[%d]", path, i), depth+1)
		}
	}
}

// unknown reports a key the schema does not have: a LiteLLM key toolbus
// does not implement (with what happens instead), or an unknown one (with
// the known key it may be a typo of). An unknown section at the top of the
// file is an error: a misspelt section would lose everything in it. The
// value is not read, and os.environ/NAME in it is not resolved.
func (w *walker) unknown(path, pattern string, value *yaml.Node, known map[string]reflect.Type) {
	k, ok := liteLLMKeys[pattern]
	if !ok {
		if section, _, nested := strings.Cut(pattern, "."); nested {
			k, ok = liteLLMSectionRest[section]
		}
	}
	if !ok {
		msg := "unknown key: toolbus does not read it"
		if near := nearest(path[strings.LastIndex(path, ".")+1:], known); near != "" {
			msg += " (did you mean " + near + "?)"
		}
		if !strings.Contains(path, ".") {
			w.errorf("%s: unknown section: neither toolbus's nor LiteLLM's%s", path, strings.TrimPrefix(msg, "unknown key: toolbus does not read it"))
			return
		}
		w.warnings = append(w.warnings, Warning{Path: path, Message: msg})
		return
	}
	w.warnings = append(w.warnings, Warning{Path: path, Message: "LiteLLM key not implemented by toolbus, " + k.instead})
	// Keys of a LiteLLM section with something of their own to say.
	if value.Kind == yaml.MappingNode {
		w.mapping(value, path, func(key string, v *yaml.Node) {
			if _, ok := liteLLMKeys[joinPath(pattern, key)]; ok {
				w.unknown(joinPath(path, key), joinPath(pattern, key), v, nil)
			}
		}, 0)
	}
}

// fieldsOf returns the keys a struct reads, with their types, as yaml.v3
// decodes them: the yaml tag's name (the lower-cased field name without
// one), ",inline" structs' keys as the parent's, "-" and unexported fields
// left out.
func fieldsOf(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() && !sf.Anonymous {
			continue
		}
		tag := sf.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if slices.Contains(strings.Split(opts, ","), "inline") {
			ft := sf.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range fieldsOf(ft) {
					fields[k] = v
				}
			}
			continue
		}
		if !sf.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		fields[name] = sf.Type
	}
	return fields
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// isTextValue reports whether t decodes itself from one scalar (Duration).
func isTextValue(t reflect.Type) bool {
	return reflect.PointerTo(t).Implements(textUnmarshaler)
}

// scalarName says what a scalar of type t looks like.
func scalarName(t reflect.Type) string {
	if t == reflect.TypeFor[Duration]() {
		return "a duration (30s, 5m, or a number of seconds)"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	}
	return "a " + t.Kind().String()
}

// describe names what a node is, without its value.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str":
			return "a string"
		case "!!int":
			return "an integer"
		case "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		case "!!timestamp":
			return "a date"
		}
		return "a scalar"
	}
	return "something else"
}

// nearest returns the known key within two edits of key, if there is one
// (the closest; the first in order on a tie).
func nearest(key string, known map[string]reflect.Type) string {
	best, bestDist := "", 3
	names := make([]string, 0, len(known))
	for k := range known {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		if d := editDistance(key, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
