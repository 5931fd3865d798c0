package validate

import (
	"bytes"
	"context"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"sigs.k8s.io/yaml"

	"github.com/toolbus/toolbus/contracts"
)

// kedaModule is the KEDA release whose CRD and scalers the ScaledObject is
// checked against (its Go module carries config/crd/bases and pkg/scalers).
const kedaModule = "github.com/kedacore/keda/v2@v2.21.0"

// kedaSource downloads KEDA's module through the Go module proxy (cached
// after the first time) and returns its directory.
func kedaSource(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, "go", "mod", "download", "-json", kedaModule)
	c.Dir = t.TempDir() // outside any module
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		t.Fatalf("go mod download %s: %v\n%s%s", kedaModule, err, out, stderr.Bytes())
	}
	var info struct{ Dir, Error string }
	if err := json.Unmarshal(out, &info); err != nil || info.Dir == "" {
		t.Fatalf("go mod download %s: %v %s", kedaModule, err, info.Error)
	}
	return info.Dir
}

// scaledObjectSchema compiles the ScaledObject CRD's openAPIV3Schema as a
// JSON schema, closed like the API server's strict field validation: an
// unknown field is an error unless the schema keeps unknown fields.
func scaledObjectSchema(t *testing.T, keda string) *jsonschema.Schema {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(keda, "config", "crd", "bases", "keda.sh_scaledobjects.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var crd struct {
		Spec struct {
			Versions []struct {
				Name   string
				Schema struct {
					OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
				}
			}
		}
	}
	if err := yaml.Unmarshal(data, &crd); err != nil {
		t.Fatal(err)
	}
	for _, v := range crd.Spec.Versions {
		if v.Name != "v1alpha1" {
			continue
		}
		schema := v.Schema.OpenAPIV3Schema
		closeObjects(schema)
		c := jsonschema.NewCompiler()
		if err := c.AddResource("scaledobject.json", schema); err != nil {
			t.Fatal(err)
		}
		s, err := c.Compile("scaledobject.json")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	t.Fatal("KEDA CRD: no v1alpha1 ScaledObject schema")
	return nil
}

func closeObjects(v any) {
	switch n := v.(type) {
	case map[string]any:
		_, props := n["properties"]
		_, extra := n["additionalProperties"]
		if props && !extra && n["x-kubernetes-preserve-unknown-fields"] != true {
			n["additionalProperties"] = false
		}
		for _, c := range n {
			closeObjects(c)
		}
	case []any:
		for _, c := range n {
			closeObjects(c)
		}
	}
}

// scalerParams reads the trigger metadata a KEDA scaler accepts, from the
// keda:"name=…" tags of its metadata struct: name → required.
func scalerParams(t *testing.T, keda, file string) map[string]bool {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(keda, "pkg", "scalers", file), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	params := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		field, ok := n.(*ast.Field)
		if !ok || field.Tag == nil {
			return true
		}
		tag, err := strconv.Unquote(field.Tag.Value)
		if err != nil {
			return true
		}
		spec, ok := reflect.StructTag(tag).Lookup("keda")
		if !ok {
			return true
		}
		var name string
		required := true
		for _, part := range strings.Split(spec, ",") {
			part = strings.TrimSpace(part)
			switch {
			case strings.HasPrefix(part, "name="):
				name = strings.TrimPrefix(part, "name=")
			case part == "optional", strings.HasPrefix(part, "default="):
				required = false
			}
		}
		if name != "" {
			params[name] = required
		}
		return true
	})
	if len(params) == 0 {
		t.Fatalf("KEDA %s: no keda tags found", file)
	}
	return params
}

var scalerFiles = map[string]string{
	"nats-jetstream": "nats_jetstream_scaler.go",
	"cpu":            "cpu_memory_scaler.go",
}

// The ScaledObject is valid for KEDA's CRD, uses only metadata its scalers
// read, and watches the jobs consumer of every configured server in the
// stream and NATS account toolbus uses.
func TestKEDA_ScaledObject(t *testing.T) {
	m := buildOverlay(t, "overlays/keda")
	if len(m.scaledObject) != 1 {
		t.Fatalf("overlays/keda: %d ScaledObjects, want 1", len(m.scaledObject))
	}
	obj := m.scaledObject[0]
	keda := kedaSource(t)

	// Through JSON, as the API server sees it.
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if err := scaledObjectSchema(t, keda).Validate(inst); err != nil {
		t.Fatalf("ScaledObject does not match KEDA's CRD (%s): %v", kedaModule, err)
	}

	var so struct {
		Spec struct {
			ScaleTargetRef  struct{ Name, Kind string }
			MinReplicaCount *int
			MaxReplicaCount *int
			Triggers        []struct {
				Type       string
				MetricType string
				Metadata   map[string]string
			}
		}
	}
	if err := json.Unmarshal(raw, &so); err != nil {
		t.Fatal(err)
	}
	if d := m.deployments[so.Spec.ScaleTargetRef.Name]; d == nil || d.Name != "toolbus-worker" || (so.Spec.ScaleTargetRef.Kind != "" && so.Spec.ScaleTargetRef.Kind != "Deployment") {
		t.Errorf("ScaledObject scales %+v, want the Deployment toolbus-worker", so.Spec.ScaleTargetRef)
	}
	if so.Spec.MinReplicaCount == nil || *so.Spec.MinReplicaCount < 1 {
		t.Errorf("minReplicaCount %v: sync calls need a worker at all times", so.Spec.MinReplicaCount)
	}

	cfg := configFromMap(t, m)
	var wantConsumers, gotConsumers []string
	for _, s := range cfg.ServerNames() {
		wantConsumers = append(wantConsumers, contracts.JobsConsumer(s))
	}
	account := toolbusAccount(t)
	monitor := natsValues(t).monitorEndpoint(t)
	var cpu bool
	for _, tr := range so.Spec.Triggers {
		file, ok := scalerFiles[tr.Type]
		if !ok {
			t.Errorf("trigger %s: not a scaler this check knows", tr.Type)
			continue
		}
		params := scalerParams(t, keda, file)
		for k := range tr.Metadata {
			if _, ok := params[k]; !ok {
				t.Errorf("trigger %s: metadata %q is not read by KEDA's scaler (it reads %v)", tr.Type, k, sortedKeys(params))
			}
		}
		for k, required := range params {
			if _, ok := tr.Metadata[k]; required && !ok {
				t.Errorf("trigger %s: required metadata %q missing", tr.Type, k)
			}
		}
		switch tr.Type {
		case "nats-jetstream":
			md := tr.Metadata
			if md["stream"] != contracts.JobsStream {
				t.Errorf("nats-jetstream: stream %q, want %s", md["stream"], contracts.JobsStream)
			}
			if md["account"] != account {
				t.Errorf("nats-jetstream: account %q, want %s (toolbus.conf)", md["account"], account)
			}
			if md["natsServerMonitoringEndpoint"] != monitor {
				t.Errorf("nats-jetstream: endpoint %q, want %s (the NATS release's headless Service)", md["natsServerMonitoringEndpoint"], monitor)
			}
			if n, err := strconv.Atoi(md["lagThreshold"]); err != nil || n < 1 {
				t.Errorf("nats-jetstream: lagThreshold %q", md["lagThreshold"])
			}
			gotConsumers = append(gotConsumers, md["consumer"])
		case "cpu":
			cpu = tr.MetricType == "Utilization"
		}
	}
	if !slices.Equal(sorted(gotConsumers), sorted(wantConsumers)) {
		t.Errorf("jobs consumers watched %v, want one per configured server: %v", gotConsumers, wantConsumers)
	}
	if !cpu {
		t.Error("no cpu Utilization trigger: sync calls would not scale the workers")
	}
}

func sortedKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
