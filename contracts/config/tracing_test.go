package config

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestTracing_OffByDefault(t *testing.T) {
	f, err := Decode([]byte("mcp_servers: {}\n"), yaml.Unmarshal)
	if err != nil {
		t.Fatal(err)
	}
	if f.Tracing.Endpoint != "" || f.Tracing.SampleRatio != 1 {
		t.Fatalf("tracing defaults %+v", f.Tracing)
	}
}

func TestTracing_Env(t *testing.T) {
	tests := []struct {
		name string
		file string
		env  map[string]string
		want string
	}{
		{"nothing", "", nil, ""},
		{"file", "http://file:4318/v1/traces", nil, "http://file:4318/v1/traces"},
		{"toolbus env wins over the file", "http://file:4318", map[string]string{EnvTracingEndpoint: "http://env:4318"}, "http://env:4318"},
		{"the file wins over OTEL", "http://file:4318", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4318"}, "http://file:4318"},
		{"OTEL traces endpoint as is", "", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://otel:4318/custom", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://base:4318"}, "http://otel:4318/custom"},
		{"OTEL base endpoint gets /v1/traces", "", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4318/"}, "http://otel:4318/v1/traces"},
		{"OTEL_SDK_DISABLED", "http://file:4318", map[string]string{"OTEL_SDK_DISABLED": "true"}, ""},
		{"OTEL_TRACES_EXPORTER=none", "", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4318", "OTEL_TRACES_EXPORTER": "none"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &File{Tracing: Tracing{Endpoint: tc.file}}
			if err := f.ApplyEnv(func(k string) string { return tc.env[k] }); err != nil {
				t.Fatal(err)
			}
			if f.Tracing.Endpoint != tc.want {
				t.Fatalf("endpoint %q, want %q", f.Tracing.Endpoint, tc.want)
			}
		})
	}
	f := &File{}
	env := map[string]string{"OTEL_SERVICE_NAME": "gw-eu", EnvTracingSampleRatio: "0.25"}
	if err := f.ApplyEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if f.Tracing.ServiceName != "gw-eu" || f.Tracing.SampleRatio != 0.25 {
		t.Fatalf("tracing %+v", f.Tracing)
	}
	env[EnvTracingSampleRatio] = "lots"
	if err := (&File{}).ApplyEnv(func(k string) string { return env[k] }); err == nil {
		t.Fatal("a sample ratio that is no number was accepted")
	}
}

func TestTracing_Validation(t *testing.T) {
	_, err := Decode([]byte("tracing:\n  endpoint: collector:4318\n  sample_ratio: 2\n"), yaml.Unmarshal)
	if err == nil || !strings.Contains(err.Error(), "tracing.endpoint") || !strings.Contains(err.Error(), "tracing.sample_ratio") {
		t.Fatalf("want both tracing problems reported, got %v", err)
	}
}
