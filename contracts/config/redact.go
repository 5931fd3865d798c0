package config

import (
	"bytes"
	"encoding"
	"io"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Secrets in the schema are marked with a struct tag, so that a field added
// later is redacted by tagging it:
//
//	secret:"true"  the value is a secret: a string, each item of a list,
//	               each value of a map (its keys are shown)
//	secret:"url"   a URL (or a comma-separated list of them) whose user
//	               information and query values are secrets
//
// WriteEffective prints Redacted (or REDACTED inside a URL) in their place.
// A tag on a struct field applies to the whole struct below it.

// Redacted stands for a secret value in WriteEffective's output.
const Redacted = "<redacted>"

// redactedInURL stands for a secret inside a URL (no characters to escape).
const redactedInURL = "REDACTED"

// WriteEffective writes f as YAML, every key with its value (defaults
// applied, os.environ/NAME resolved), every secret redacted. It is what
// `ingress check` and `worker check` print.
func (f *File) WriteEffective(w io.Writer) error {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(effectiveNode(reflect.ValueOf(f).Elem(), "")); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}

var textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()

// effectiveNode builds the YAML node of v; secret is the secret tag in force.
func effectiveNode(v reflect.Value, secret string) *yaml.Node {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
		}
		v = v.Elem()
	}
	if v.Type().Implements(textMarshaler) && v.Kind() != reflect.String {
		text, err := v.Interface().(encoding.TextMarshaler).MarshalText()
		if err != nil {
			return str(Redacted)
		}
		return str(redactString(string(text), secret))
	}
	switch v.Kind() {
	case reflect.Struct:
		n := &yaml.Node{Kind: yaml.MappingNode}
		addFields(n, v, secret)
		return n
	case reflect.Map:
		n := &yaml.Node{Kind: yaml.MappingNode}
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		for _, k := range keys {
			n.Content = append(n.Content, str(k.String()), effectiveNode(v.MapIndex(k), secret))
		}
		if len(keys) == 0 {
			n.Style = yaml.FlowStyle
		}
		return n
	case reflect.Slice, reflect.Array:
		n := &yaml.Node{Kind: yaml.SequenceNode}
		for i := range v.Len() {
			n.Content = append(n.Content, effectiveNode(v.Index(i), secret))
		}
		if v.Len() == 0 || v.Type().Elem().Kind() != reflect.Struct {
			n.Style = yaml.FlowStyle
		}
		return n
	case reflect.String:
		return str(redactString(v.String(), secret))
	case reflect.Bool:
		return redactScalar("!!bool", strconv.FormatBool(v.Bool()), secret)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return redactScalar("!!int", strconv.FormatInt(v.Int(), 10), secret)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return redactScalar("!!int", strconv.FormatUint(v.Uint(), 10), secret)
	case reflect.Float32, reflect.Float64:
		f := strconv.FormatFloat(v.Float(), 'g', -1, 64)
		if !strings.ContainsAny(f, ".eIN") {
			f += ".0" // reads back as a float without a tag
		}
		return redactScalar("!!float", f, secret)
	}
	return str(Redacted) // a kind the schema does not use: show nothing of it
}

// addFields adds a struct's keys to n, as the loader reads them (inline
// structs' keys as the struct's own, "-" fields left out).
func addFields(n *yaml.Node, v reflect.Value, secret string) {
	t := v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("yaml")
		if tag == "-" || (!sf.IsExported() && !sf.Anonymous) {
			continue
		}
		s := secret
		if own := sf.Tag.Get("secret"); own != "" {
			s = own
		}
		name, opts, _ := strings.Cut(tag, ",")
		fv := v.Field(i)
		if slices.Contains(strings.Split(opts, ","), "inline") {
			for fv.Kind() == reflect.Pointer {
				if fv.IsNil() {
					break
				}
				fv = fv.Elem()
			}
			if fv.Kind() == reflect.Struct {
				addFields(n, fv, s)
			}
			continue
		}
		if !sf.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		n.Content = append(n.Content, str(name), effectiveNode(fv, s))
	}
}

func str(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }

func redactScalar(tag, value, secret string) *yaml.Node {
	if secret == "true" {
		return str(Redacted)
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value}
}

// redactString applies a secret tag to a string value. An empty value stays
// empty (it shows that nothing is set).
func redactString(s, secret string) string {
	switch {
	case s == "" || secret == "":
		return s
	case secret == "url":
		return redactURLs(s)
	}
	return Redacted
}

// redactURLs redacts the user information and query values of each URL in
// a comma-separated list. What does not parse as a URL is redacted whole.
func redactURLs(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		parts[i] = redactURL(strings.TrimSpace(p))
	}
	return strings.Join(parts, ",")
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme == "" && u.Host == "") {
		if !strings.ContainsAny(s, "@?") {
			return s // a bare host:port
		}
		return Redacted
	}
	hadUser := u.User != nil
	u.User = nil
	query := u.Query()
	u.RawQuery, u.Fragment, u.RawFragment = "", "", ""
	out := u.String()
	if hadUser {
		out = strings.Replace(out, "//", "//"+redactedInURL+"@", 1)
	}
	if len(query) > 0 {
		names := make([]string, 0, len(query))
		for k := range query {
			names = append(names, url.QueryEscape(k)+"="+redactedInURL)
		}
		slices.Sort(names)
		out += "?" + strings.Join(names, "&")
	}
	return out
}
