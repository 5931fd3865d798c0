package validate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"sigs.k8s.io/yaml"
)

// helmValues is deploy/k8s/nats-values.yaml, for the official NATS chart
// (1.x). The chart ships no values schema; these are the parts toolbus
// depends on, decoded strictly.
type helmValues struct {
	Config struct {
		Cluster struct {
			Enabled  bool `json:"enabled"`
			Replicas int  `json:"replicas"`
		} `json:"cluster"`
		JetStream struct {
			Enabled   bool `json:"enabled"`
			FileStore struct {
				Enabled bool   `json:"enabled"`
				Dir     string `json:"dir"`
				PVC     struct {
					Enabled bool   `json:"enabled"`
					Size    string `json:"size"`
				} `json:"pvc"`
			} `json:"fileStore"`
		} `json:"jetstream"`
		Monitor struct {
			Enabled bool `json:"enabled"`
			Port    int  `json:"port"`
		} `json:"monitor"`
		Merge map[string]any `json:"merge"`
	} `json:"config"`
	Container struct {
		Env map[string]struct {
			ValueFrom struct {
				SecretKeyRef struct {
					Name string `json:"name"`
					Key  string `json:"key"`
				} `json:"secretKeyRef"`
			} `json:"valueFrom"`
		} `json:"env"`
		Merge map[string]any `json:"merge"`
	} `json:"container"`
	PodDisruptionBudget struct {
		Enabled bool `json:"enabled"`
	} `json:"podDisruptionBudget"`
}

// The release name and namespace the manifests expect (see nats-values.yaml).
const natsRelease, natsNamespace = "nats", "toolbus"

func natsValues(t *testing.T) *helmValues {
	t.Helper()
	v := &helmValues{}
	if err := yaml.UnmarshalStrict(readFile(t, "deploy", "k8s", "nats-values.yaml"), v); err != nil {
		t.Fatalf("nats-values.yaml: %v", err)
	}
	return v
}

func (v *helmValues) monitorEndpoint(t *testing.T) string {
	t.Helper()
	if !v.Config.Monitor.Enabled || v.Config.Monitor.Port == 0 {
		t.Fatal("nats-values.yaml: monitoring is off: KEDA and the probes need it")
	}
	return fmt.Sprintf("%s-headless.%s.svc.cluster.local:%d", natsRelease, natsNamespace, v.Config.Monitor.Port)
}

func TestNATSValues_ClusterWithJetStreamOnFiles(t *testing.T) {
	v := natsValues(t)
	c := v.Config
	if !c.Cluster.Enabled || c.Cluster.Replicas != 3 {
		t.Errorf("cluster %+v, want 3 replicas", c.Cluster)
	}
	if !c.JetStream.Enabled || !c.JetStream.FileStore.Enabled || !c.JetStream.FileStore.PVC.Enabled || c.JetStream.FileStore.PVC.Size == "" {
		t.Errorf("jetstream %+v, want file storage on a persistent volume", c.JetStream)
	}
	if !v.PodDisruptionBudget.Enabled {
		t.Error("no PodDisruptionBudget for NATS")
	}
	v.monitorEndpoint(t)
}

// chartVar is how the chart writes an unquoted value into nats.conf.
var chartVar = regexp.MustCompile(`"<<\s+(.*?)\s+>>"`)

// The users and permissions of the Helm release are those of
// deploy/nats/toolbus.conf: config.merge, rendered as the chart does (JSON,
// "<< X >>" unquoted) and loaded by nats-server, against toolbus.conf.
func TestNATSValues_SameUsersAsToolbusConf(t *testing.T) {
	v := natsValues(t)
	var merged bytes.Buffer
	enc := json.NewEncoder(&merged) // raw JSON: subjects keep their ">"
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v.Config.Merge); err != nil {
		t.Fatal(err)
	}
	conf := chartVar.ReplaceAll(merged.Bytes(), []byte("$1"))
	path := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(path, conf, 0o600); err != nil {
		t.Fatal(err)
	}
	got := loadNATSConf(t, path)
	want := loadNATSConf(t, repoPath("deploy", "nats", "toolbus.conf"))
	if g, w := usersPermissions(got), usersPermissions(want); g != w {
		t.Errorf("nats-values.yaml users differ from toolbus.conf:\n got %s\nwant %s", g, w)
	}
	if got.MaxPayload != want.MaxPayload {
		t.Errorf("max_payload %d, toolbus.conf has %d", got.MaxPayload, want.MaxPayload)
	}
	for _, u := range got.Users {
		if !strings.HasPrefix(u.Password, "pw-") {
			t.Errorf("user %s: password is not from the environment", u.Username)
		}
	}

	// The variables the servers read come from the Secret the toolbus pods use.
	secrets := exampleSecrets(t)
	var envNames []string
	for name, e := range v.Container.Env {
		envNames = append(envNames, name)
		ref := e.ValueFrom.SecretKeyRef
		if !slices.Contains(secrets[ref.Name], ref.Key) {
			t.Errorf("container.env %s: Secret %s key %s is not in secrets.example.yaml", name, ref.Name, ref.Key)
		}
	}
	var wantEnv []string
	for _, v := range natsPasswordVars(t) {
		wantEnv = append(wantEnv, v)
	}
	if !slices.Equal(sorted(envNames), sorted(wantEnv)) {
		t.Errorf("container.env %v, want the password variables %v", sorted(envNames), sorted(wantEnv))
	}
}

// usersPermissions renders each user's account and permissions.
func usersPermissions(o *server.Options) string {
	var out []string
	for _, u := range o.Users {
		acc := ""
		if u.Account != nil {
			acc = u.Account.Name
		}
		p := u.Permissions
		if p == nil {
			out = append(out, u.Username+"@"+acc+": all")
			continue
		}
		out = append(out, fmt.Sprintf("%s@%s: %+v / %+v / %+v", u.Username, acc, deref(p.Publish), deref(p.Subscribe), p.Response))
	}
	slices.Sort(out)
	return strings.Join(out, "\n")
}

func deref(p *server.SubjectPermission) server.SubjectPermission {
	if p == nil {
		return server.SubjectPermission{}
	}
	return *p
}
