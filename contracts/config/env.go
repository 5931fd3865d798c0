package config

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/toolbus/toolbus/contracts"
)

// Environment variables that override the file. Each secret one also has a
// _FILE variant naming a file that holds the value, so secrets stay out of
// process listings.
const (
	EnvListen          = "TOOLBUS_LISTEN"
	EnvNATSURL         = "TOOLBUS_NATS_URL"
	EnvSealPublicKeys  = "TOOLBUS_SEAL_PUBLIC_KEYS"
	EnvSealPrivateKeys = "TOOLBUS_SEAL_PRIVATE_KEYS"
	EnvMetricsListen   = "TOOLBUS_METRICS_LISTEN"
	// EnvToolSeparator is LiteLLM's name for ingress.tool_separator.
	EnvToolSeparator = "MCP_TOOL_PREFIX_SEPARATOR"
	// EnvTracingEndpoint sets tracing.endpoint; the standard
	// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (a traces URL) and
	// OTEL_EXPORTER_OTLP_ENDPOINT (a base URL, /v1/traces is added) are read
	// when it is not set. OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none
	// turn tracing off; OTEL_SERVICE_NAME sets tracing.service_name and
	// TOOLBUS_TRACING_SAMPLE_RATIO tracing.sample_ratio.
	EnvTracingEndpoint    = "TOOLBUS_TRACING_ENDPOINT"
	EnvTracingSampleRatio = "TOOLBUS_TRACING_SAMPLE_RATIO"
)

// ApplyEnv overrides the file with the environment. getenv is os.Getenv in
// the binaries and a map lookup in tests.
func (f *File) ApplyEnv(getenv func(string) string) error {
	if v := getenv(EnvListen); v != "" {
		f.Ingress.Listen = v
	}
	if v := getenv(EnvNATSURL); v != "" {
		f.NATS.URL = v
	}
	if v := getenv(EnvMetricsListen); v != "" {
		f.Worker.MetricsListen = v
	}
	if v := getenv(EnvToolSeparator); v != "" {
		f.Ingress.ToolSeparator = v
	}
	if err := f.Tracing.applyEnv(getenv); err != nil {
		return err
	}
	pub, err := secretEnv(getenv, EnvSealPublicKeys)
	if err != nil {
		return err
	}
	if pub != "" {
		f.Seal.PublicKeys = splitList(pub)
	}
	priv, err := secretEnv(getenv, EnvSealPrivateKeys)
	if err != nil {
		return err
	}
	if priv != "" {
		f.Seal.PrivateKeys = splitList(priv)
	}
	return nil
}

// applyEnv reads the tracing variables (see EnvTracingEndpoint).
func (t *Tracing) applyEnv(getenv func(string) string) error {
	switch {
	case getenv(EnvTracingEndpoint) != "":
		t.Endpoint = getenv(EnvTracingEndpoint)
	case t.Endpoint != "":
	case getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "":
		t.Endpoint = getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	case getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "":
		t.Endpoint = strings.TrimSuffix(getenv("OTEL_EXPORTER_OTLP_ENDPOINT"), "/") + "/v1/traces"
	}
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") || strings.EqualFold(getenv("OTEL_TRACES_EXPORTER"), "none") {
		t.Endpoint = ""
	}
	if v := getenv("OTEL_SERVICE_NAME"); v != "" {
		t.ServiceName = v
	}
	if v := getenv(EnvTracingSampleRatio); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return fmt.Errorf("%s: %q is not a number", EnvTracingSampleRatio, v)
		}
		t.SampleRatio = r
	}
	return nil
}

// secretEnv reads NAME, or the file named by NAME_FILE.
func secretEnv(getenv func(string) string, name string) (string, error) {
	if v := getenv(name); v != "" {
		return v, nil
	}
	path := getenv(name + "_FILE")
	if path == "" {
		return "", nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s_FILE: %w", name, err)
	}
	return strings.TrimSpace(string(data)), nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' || r == ' ' }) {
		out = append(out, strings.TrimSpace(f))
	}
	return out
}

// ParsePublicKeys parses the recipient keys; the first one seals.
func (s *Seal) ParsePublicKeys() ([]*contracts.PublicKey, error) {
	var keys []*contracts.PublicKey
	for i, text := range s.PublicKeys {
		k, err := contracts.ParsePublicKey(text)
		if err != nil {
			return nil, fmt.Errorf("seal.public_keys[%d]: %w", i, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// ParsePrivateKeys parses the keys a worker opens with, from private_keys
// and private_keys_file. Errors never echo key material.
func (s *Seal) ParsePrivateKeys() ([]*contracts.PrivateKey, error) {
	texts := s.PrivateKeys
	if s.PrivateKeysFile != "" {
		data, err := os.ReadFile(s.PrivateKeysFile)
		if err != nil {
			return nil, fmt.Errorf("seal.private_keys_file: %w", err)
		}
		texts = append(texts, splitList(string(data))...)
	}
	var keys []*contracts.PrivateKey
	for i, text := range texts {
		k, err := contracts.ParsePrivateKey(text)
		if err != nil {
			return nil, fmt.Errorf("seal private key #%d: %w", i+1, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}
