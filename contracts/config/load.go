package config

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// EnvPrefix marks a value read from the environment, LiteLLM's convention:
// master_key: os.environ/LITELLM_MASTER_KEY takes the key from the variable
// LITELLM_MASTER_KEY. It works for every string value toolbus reads.
const EnvPrefix = "os.environ/"

// Options change how a configuration file is read.
type Options struct {
	// Strict turns every warning into an error. strict: true at the top of
	// the file does the same.
	Strict bool
	// Getenv resolves os.environ/NAME values; os.Getenv when nil. A variable
	// that is empty counts as not set.
	Getenv func(string) string
}

// Warning is a problem that does not stop a start: a key toolbus does not
// know, or a LiteLLM key it does not implement. It names the key's path and
// never carries a value.
type Warning struct {
	// Path is the key's place in the file: mcp_servers.jira.auth_typo,
	// keys[0].name.
	Path    string
	Message string
}

func (w Warning) String() string { return w.Path + ": " + w.Message }

// ReadFile reads path and parses it (see Parse). Errors start with path.
func ReadFile(path string, o Options) (*File, []Warning, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("config: %w", err)
	}
	f, warns, err := Parse(data, o)
	if err != nil {
		return nil, warns, fmt.Errorf("%s: %w", path, err)
	}
	return f, warns, nil
}

// Parse reads a configuration: it resolves os.environ/NAME values, checks
// every key against the schema (unknown keys and LiteLLM keys toolbus does
// not implement are warnings, errors when strict), decodes, applies the
// defaults and validates (Normalize). Every problem found is reported, not
// just the first; no error or warning carries a value from the file or the
// environment.
//
// The warnings are returned, not logged: the binaries log them at start-up
// and `check` prints them.
func Parse(data []byte, o Options) (*File, []Warning, error) {
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("config: %w", err)
	}
	f := &File{}
	var (
		errs  []error
		warns []Warning
	)
	if root := documentRoot(&doc); root != nil {
		if root.Kind != yaml.MappingNode {
			return nil, nil, errors.New("config: the file is not a mapping of sections (general_settings:, mcp_servers:, …)")
		}
		w := walker{getenv: getenv}
		w.walk(root, fileType, "", "", 0)
		warns, errs = w.warnings, w.errs
		if len(errs) == 0 {
			if err := root.Decode(f); err != nil {
				errs = append(errs, scrubDecodeError(err))
			}
		}
	}
	if o.Strict || f.Strict || strictInFile(&doc) {
		for _, w := range warns {
			errs = append(errs, fmt.Errorf("%s: %s (an error under strict)", w.Path, w.Message))
		}
		warns = nil
	}
	if len(errs) > 0 {
		return nil, warns, errors.Join(errs...)
	}
	if err := f.Normalize(); err != nil {
		return nil, warns, err
	}
	return f, warns, nil
}

// Decode parses data as Parse does with the process environment, not
// strict, and drops the warnings: for tests and tools that have nowhere to
// show them. The binaries use ReadFile, whose warnings they log. unmarshal
// is not used (the package decodes YAML itself); it is kept so that callers
// written for the earlier signature still build.
func Decode(data []byte, unmarshal func([]byte, any) error) (*File, error) {
	_ = unmarshal
	f, _, err := Parse(data, Options{})
	return f, err
}

// strictInFile reports whether the file says strict: true at its top (read
// before decoding, so that it holds when decoding fails too).
func strictInFile(doc *yaml.Node) bool {
	root := documentRoot(doc)
	if root == nil || root.Kind != yaml.MappingNode {
		return false
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if k, v := root.Content[i], root.Content[i+1]; k.Value == "strict" && v.Kind == yaml.ScalarNode {
			var b bool
			return v.Decode(&b) == nil && b
		}
	}
	return false
}

// documentRoot returns the top node of a document, or nil for an empty one.
func documentRoot(doc *yaml.Node) *yaml.Node {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return nil
	}
	return root
}

// backquoted is how yaml.v3 quotes a value in its type errors.
var backquoted = regexp.MustCompile("`[^`]*`")

// scrubDecodeError turns a decoder error into one that carries no value.
// The schema walk reports type errors first, with their paths; this is the
// backstop for anything it does not foresee.
func scrubDecodeError(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("config: %s", backquoted.ReplaceAllString(err.Error(), "a value"))
	}
	errs := make([]error, len(te.Errors))
	for i, e := range te.Errors {
		errs[i] = errors.New(backquoted.ReplaceAllString(e, "a value"))
	}
	return errors.Join(errs...)
}

// joinPath adds a key to a dotted path.
func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// resolveEnv replaces an os.environ/NAME scalar with the variable's value,
// in place. A variable not set is an error naming path and variable; the
// node is then emptied, so the literal text is never used as a value.
func (w *walker) resolveEnv(n *yaml.Node, path string) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" || !strings.HasPrefix(n.Value, EnvPrefix) {
		return
	}
	name := strings.TrimPrefix(n.Value, EnvPrefix)
	value := ""
	switch {
	case !validEnvName(name):
		w.errorf("%s: %s must be followed by an environment variable's name", path, EnvPrefix)
	default:
		if value = w.getenv(name); value == "" {
			w.errorf("%s: environment variable %s is not set", path, name)
		}
	}
	n.Value = value
	// The value is read as if written plainly in the file (a number for a
	// number field), except that what would read as null stays a string.
	n.Tag, n.Style = "", 0
	if value == "" || n.ShortTag() == "!!null" {
		n.Tag, n.Style = "!!str", yaml.DoubleQuotedStyle
	}
}

// validEnvName reports whether name can be an environment variable's name.
func validEnvName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if r == '=' || r == 0 || r <= ' ' || r == 0x7f {
			return false
		}
	}
	return true
}
