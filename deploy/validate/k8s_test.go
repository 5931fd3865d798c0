package validate

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/toolbus/toolbus/contracts/config"
)

// manifests is what one kustomize build yields, decoded into the API types.
type manifests struct {
	deployments  map[string]*appsv1.Deployment
	services     map[string]*corev1.Service
	configMaps   map[string]*corev1.ConfigMap
	pdbs         map[string]*policyv1.PodDisruptionBudget
	hpas         map[string]*autoscalingv2.HorizontalPodAutoscaler
	namespaces   []string
	scaledObject []map[string]any // KEDA, checked against its CRD schema
}

// buildOverlay runs kustomize on deploy/k8s/<dir> in-process and decodes
// every object strictly (an unknown or misspelt field is an error).
func buildOverlay(t *testing.T, dir string) *manifests {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resMap, err := k.Run(filesys.MakeFsOnDisk(), mustAbs(t, repoPath("deploy", "k8s", dir)))
	if err != nil {
		t.Fatalf("kustomize build deploy/k8s/%s: %v", dir, err)
	}
	m := &manifests{
		deployments: map[string]*appsv1.Deployment{}, services: map[string]*corev1.Service{},
		configMaps: map[string]*corev1.ConfigMap{}, pdbs: map[string]*policyv1.PodDisruptionBudget{},
		hpas: map[string]*autoscalingv2.HorizontalPodAutoscaler{},
	}
	for _, r := range resMap.Resources() {
		data, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		kind, name := r.GetKind(), r.GetName()
		where := fmt.Sprintf("deploy/k8s/%s: %s %s", dir, kind, name)
		if kind != "Namespace" && r.GetNamespace() != "toolbus" {
			t.Errorf("%s: namespace %q, want toolbus", where, r.GetNamespace())
		}
		strict := func(into any) {
			if err := yaml.UnmarshalStrict(data, into); err != nil {
				t.Errorf("%s: %v", where, err)
			}
		}
		switch gvk := r.GetApiVersion() + " " + kind; gvk {
		case "apps/v1 Deployment":
			m.deployments[name] = decodeStrict[appsv1.Deployment](strict)
		case "v1 Service":
			m.services[name] = decodeStrict[corev1.Service](strict)
		case "v1 ConfigMap":
			m.configMaps[name] = decodeStrict[corev1.ConfigMap](strict)
		case "v1 Namespace":
			decodeStrict[corev1.Namespace](strict)
			m.namespaces = append(m.namespaces, name)
		case "policy/v1 PodDisruptionBudget":
			m.pdbs[name] = decodeStrict[policyv1.PodDisruptionBudget](strict)
		case "autoscaling/v2 HorizontalPodAutoscaler":
			m.hpas[name] = decodeStrict[autoscalingv2.HorizontalPodAutoscaler](strict)
		case "keda.sh/v1alpha1 ScaledObject":
			var o map[string]any
			strict(&o)
			m.scaledObject = append(m.scaledObject, o)
		default:
			t.Errorf("%s: %s is not a kind this check knows", where, gvk)
		}
	}
	return m
}

// decodeStrict decodes one object of type T with strict.
func decodeStrict[T any](strict func(into any)) *T {
	o := new(T)
	strict(o)
	return o
}

var overlays = []string{"overlays/keda", "overlays/hpa"}

// Each overlay is the base plus exactly one autoscaler of the workers.
func TestK8s_OverlaysScaleTheWorkersOneWay(t *testing.T) {
	for _, dir := range overlays {
		m := buildOverlay(t, dir)
		for _, name := range []string{"toolbus-ingress", "toolbus-worker", "toolbus-demo"} {
			if m.deployments[name] == nil {
				t.Errorf("%s: no Deployment %s", dir, name)
			}
		}
		var workerScalers int
		for _, h := range m.hpas {
			if h.Spec.ScaleTargetRef.Name == "toolbus-worker" {
				workerScalers++
			}
			if d := m.deployments[h.Spec.ScaleTargetRef.Name]; d == nil || h.Spec.ScaleTargetRef.Kind != "Deployment" {
				t.Errorf("%s: HPA %s scales %+v, not a Deployment here", dir, h.Name, h.Spec.ScaleTargetRef)
			} else if d.Spec.Replicas != nil {
				t.Errorf("%s: Deployment %s sets replicas, which every apply would reset under its HPA", dir, d.Name)
			}
			if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 2 {
				t.Errorf("%s: HPA %s: minReplicas %v, want at least 2 (its PDB, rolling nodes)", dir, h.Name, h.Spec.MinReplicas)
			}
		}
		workerScalers += len(m.scaledObject)
		if workerScalers != 1 {
			t.Errorf("%s: %d autoscalers for the workers, want exactly 1", dir, workerScalers)
		}
		if !slices.Equal(m.namespaces, []string{"toolbus"}) {
			t.Errorf("%s: namespaces %v", dir, m.namespaces)
		}
	}
}

// Every pod runs as non-root with a read-only root file system, without
// privilege escalation or capabilities, with requests and a memory limit.
func TestK8s_PodsAreLockedDown(t *testing.T) {
	m := buildOverlay(t, "overlays/hpa")
	for name, d := range m.deployments {
		spec := d.Spec.Template.Spec
		psc := spec.SecurityContext
		if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
			t.Errorf("%s: pod securityContext %+v, want runAsNonRoot and a non-zero runAsUser", name, psc)
		}
		if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
			t.Errorf("%s: mounts a service account token it never uses", name)
		}
		for _, c := range spec.Containers {
			sc := c.SecurityContext
			if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
				sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
				sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
				t.Errorf("%s/%s: securityContext %+v", name, c.Name, sc)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("%s/%s: resources %+v, want cpu and memory requests and a memory limit", name, c.Name, c.Resources)
			}
			if !strings.Contains(c.Image, ":") {
				t.Errorf("%s/%s: image %q without a tag", name, c.Name, c.Image)
			}
		}
	}
}

// The ingress: probes on what it serves (/readyz, /healthz on its listen
// port from the ConfigMap), a Service and a PDB that select its pods.
func TestK8s_Ingress(t *testing.T) {
	m := buildOverlay(t, "overlays/hpa")
	cfg := configFromMap(t, m)
	d := m.deployments["toolbus-ingress"]
	c := container(t, d, "ingress")
	port := listenPort(t, cfg.Ingress.Listen)
	checkProbe(t, d, c, c.ReadinessProbe, "/readyz", port)
	checkProbe(t, d, c, c.LivenessProbe, "/healthz", port)
	checkPrometheus(t, d, c, port)
	checkConfigMount(t, d, c)
	checkEnv(t, d, c, "ingress")

	svc := m.services["toolbus-ingress"]
	if svc == nil || !selects(svc.Spec.Selector, d) || len(svc.Spec.Ports) != 1 ||
		resolvePort(t, c, svc.Spec.Ports[0].TargetPort) != port {
		t.Errorf("Service toolbus-ingress does not reach the ingress's port %d: %+v", port, svc)
	}
	pdb := m.pdbs["toolbus-ingress"]
	if pdb == nil || !selectorMatches(t, pdb.Spec.Selector, d) || pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() < 1 {
		t.Errorf("PodDisruptionBudget toolbus-ingress: %+v, want minAvailable ≥ 1 over the ingress pods", pdb)
	}
	if d.Spec.Strategy.RollingUpdate == nil || d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 {
		t.Error("ingress: a rolling update may take a replica away before its successor is ready")
	}
	if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || *g < int64(cfg.Ingress.ShutdownTimeout.D().Seconds()) {
		t.Errorf("ingress: terminationGracePeriodSeconds %v is shorter than ingress.shutdown_timeout %v", g, cfg.Ingress.ShutdownTimeout)
	}
}

// The workers: /healthz and /metrics on worker.metrics_listen, the private
// sealing key from a mounted Secret file.
func TestK8s_Worker(t *testing.T) {
	m := buildOverlay(t, "overlays/keda")
	cfg := configFromMap(t, m)
	d := m.deployments["toolbus-worker"]
	c := container(t, d, "worker")
	metrics := envValue(c, config.EnvMetricsListen)
	if metrics == "" {
		metrics = cfg.Worker.MetricsListen
	}
	if metrics == "" {
		t.Fatal("worker: no metrics_listen: no /healthz nor /metrics to probe")
	}
	port := listenPort(t, metrics)
	checkProbe(t, d, c, c.LivenessProbe, "/healthz", port)
	checkProbe(t, d, c, c.ReadinessProbe, "/healthz", port)
	checkPrometheus(t, d, c, port)
	checkConfigMount(t, d, c)
	checkEnv(t, d, c, "worker")
	if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || *g < int64(cfg.Worker.DrainTimeout.D().Seconds()) {
		t.Errorf("worker: terminationGracePeriodSeconds %v is shorter than worker.drain_timeout %v", g, cfg.Worker.DrainTimeout)
	}
	if envValue(c, config.EnvSealPrivateKeys) != "" {
		t.Error("worker: the private sealing key is in the environment, want TOOLBUS_SEAL_PRIVATE_KEYS_FILE")
	}
	keyFile := envValue(c, config.EnvSealPrivateKeys+"_FILE")
	secret, key := mountedSecretFile(t, d, c, keyFile)
	if secret != "toolbus-seal" || !slices.Contains(exampleSecrets(t)[secret], key) {
		t.Errorf("worker: %s is %s/%s, not a key of the example Secrets", keyFile, secret, key)
	}
	// An init as PID 1 (the pause container, with a shared process
	// namespace) reaps what stopped stdio servers leave.
	if s := d.Spec.Template.Spec.ShareProcessNamespace; s == nil || !*s {
		t.Error("worker: shareProcessNamespace is not true (stopped stdio servers' children would stay as zombies of PID 1)")
	}
	pdb := m.pdbs["toolbus-worker"]
	if pdb == nil || !selectorMatches(t, pdb.Spec.Selector, d) {
		t.Errorf("PodDisruptionBudget toolbus-worker: %+v", pdb)
	}
}

// The ConfigMap holds a config.yaml the binaries accept; its servers are
// reachable Services of the manifests.
func TestK8s_ConfigMap(t *testing.T) {
	m := buildOverlay(t, "overlays/keda")
	cfg := configFromMap(t, m)
	if len(cfg.MCPServers) == 0 {
		t.Fatal("config.yaml: no mcp_servers")
	}
	if cfg.Jobs.Replicas != 3 {
		t.Errorf("config.yaml: jobs.replicas %d, want 3 (the NATS cluster's size)", cfg.Jobs.Replicas)
	}
	for name, s := range cfg.MCPServers {
		u, err := url.Parse(s.URL)
		if err != nil {
			t.Fatal(err)
		}
		host, port := u.Hostname(), u.Port()
		svc := m.services[host]
		if svc == nil {
			t.Errorf("config.yaml: server %s at %s: no Service %s here", name, s.URL, host)
			continue
		}
		if len(svc.Spec.Ports) == 0 || strconv.Itoa(int(svc.Spec.Ports[0].Port)) != port {
			t.Errorf("config.yaml: server %s at port %s, Service %s has %+v", name, port, host, svc.Spec.Ports)
		}
	}
}

func configFromMap(t *testing.T, m *manifests) *config.File {
	t.Helper()
	cm := m.configMaps["toolbus-config"]
	if cm == nil || cm.Data["config.yaml"] == "" {
		t.Fatal("no ConfigMap toolbus-config with config.yaml")
	}
	return decodeConfig(t, []byte(cm.Data["config.yaml"]))
}

func container(t *testing.T, d *appsv1.Deployment, name string) *corev1.Container {
	t.Helper()
	for i := range d.Spec.Template.Spec.Containers {
		if c := &d.Spec.Template.Spec.Containers[i]; c.Name == name {
			return c
		}
	}
	t.Fatalf("%s: no container %s", d.Name, name)
	return nil
}

func listenPort(t *testing.T, listen string) int {
	t.Helper()
	_, port, err := net.SplitHostPort(listen)
	if err != nil {
		t.Fatalf("listen address %q: %v", listen, err)
	}
	return atoi(t, port)
}

// resolvePort turns a port name or number into the container's port number.
func resolvePort(t *testing.T, c *corev1.Container, p intstr.IntOrString) int {
	t.Helper()
	if p.Type == intstr.Int {
		return p.IntValue()
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort)
		}
	}
	t.Errorf("%s: no port named %q", c.Name, p.StrVal)
	return -1
}

func checkProbe(t *testing.T, d *appsv1.Deployment, c *corev1.Container, p *corev1.Probe, path string, port int) {
	t.Helper()
	if p == nil || p.HTTPGet == nil {
		t.Errorf("%s: no HTTP probe on %s", d.Name, path)
		return
	}
	if p.HTTPGet.Path != path || resolvePort(t, c, p.HTTPGet.Port) != port {
		t.Errorf("%s: probe GET %s on port %v, want %s on %d", d.Name, p.HTTPGet.Path, p.HTTPGet.Port.String(), path, port)
	}
	if !slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool { return int(cp.ContainerPort) == port }) {
		t.Errorf("%s: port %d is not declared", d.Name, port)
	}
}

func checkPrometheus(t *testing.T, d *appsv1.Deployment, c *corev1.Container, port int) {
	t.Helper()
	a := d.Spec.Template.Annotations
	if a["prometheus.io/scrape"] != "true" || a["prometheus.io/port"] != strconv.Itoa(port) || a["prometheus.io/path"] != "/metrics" {
		t.Errorf("%s: scrape annotations %v, want /metrics on port %d", d.Name, a, port)
	}
}

// checkConfigMount: --config names config.yaml of the ConfigMap's mount.
func checkConfigMount(t *testing.T, d *appsv1.Deployment, c *corev1.Container) {
	t.Helper()
	i := slices.Index(c.Args, "--config")
	if i < 0 || i+1 >= len(c.Args) {
		t.Errorf("%s: args %v without --config", d.Name, c.Args)
		return
	}
	dir, file := filepath.Split(c.Args[i+1])
	for _, vm := range c.VolumeMounts {
		if filepath.Clean(vm.MountPath) != filepath.Clean(dir) {
			continue
		}
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name == vm.Name && v.ConfigMap != nil && v.ConfigMap.Name == "toolbus-config" && file == "config.yaml" {
				return
			}
		}
	}
	t.Errorf("%s: --config %s is not config.yaml of the mounted ConfigMap toolbus-config", d.Name, c.Args[i+1])
}

var envRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// checkEnv: TOOLBUS_* names exist in contracts/config; $(VAR) references
// are defined before use; Secret references name keys of the example
// Secrets; the NATS URL uses the role's own user.
func checkEnv(t *testing.T, d *appsv1.Deployment, c *corev1.Container, role string) {
	t.Helper()
	secrets := exampleSecrets(t)
	defined := map[string]bool{}
	for _, e := range c.Env {
		if strings.HasPrefix(e.Name, "TOOLBUS_") && !knownToolbusEnv(e.Name) {
			t.Errorf("%s: environment %s is not one contracts/config reads", d.Name, e.Name)
		}
		for _, ref := range envRef.FindAllStringSubmatch(e.Value, -1) {
			if !defined[ref[1]] {
				t.Errorf("%s: %s uses $(%s) before it is defined: Kubernetes would leave it as is", d.Name, e.Name, ref[1])
			}
		}
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			ref := e.ValueFrom.SecretKeyRef
			if !slices.Contains(secrets[ref.Name], ref.Key) {
				t.Errorf("%s: %s from Secret %s key %s, not in secrets.example.yaml", d.Name, e.Name, ref.Name, ref.Key)
			}
			if ref.Name == "toolbus-nats" && ref.Key != role+"-password" {
				t.Errorf("%s: reads the %s, want %s-password only", d.Name, ref.Key, role)
			}
		}
		defined[e.Name] = true
	}
	nats := envValue(c, config.EnvNATSURL)
	if !strings.HasPrefix(nats, "nats://"+role+":$(") {
		t.Errorf("%s: TOOLBUS_NATS_URL %q, want the %s user", d.Name, envRef.ReplaceAllString(nats, "$$(…)"), role)
	}
}

func envValue(c *corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// mountedSecretFile returns the Secret and key a container sees at path.
func mountedSecretFile(t *testing.T, d *appsv1.Deployment, c *corev1.Container, path string) (string, string) {
	t.Helper()
	for _, vm := range c.VolumeMounts {
		rel, err := filepath.Rel(vm.MountPath, path)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name != vm.Name || v.Secret == nil {
				continue
			}
			for _, item := range v.Secret.Items {
				if item.Path == rel {
					return v.Secret.SecretName, item.Key
				}
			}
			if len(v.Secret.Items) == 0 {
				return v.Secret.SecretName, rel
			}
		}
	}
	t.Errorf("%s: %q is in no mounted Secret", d.Name, path)
	return "", ""
}

// exampleSecrets decodes deploy/k8s/secrets.example.yaml: Secret name → keys.
// Every value must be a visible placeholder.
func exampleSecrets(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for i, doc := range strings.Split(string(readFile(t, "deploy", "k8s", "secrets.example.yaml")), "\n---\n") {
		var s corev1.Secret
		if err := yaml.UnmarshalStrict([]byte(doc), &s); err != nil {
			t.Fatalf("secrets.example.yaml document %d: %v", i, err)
		}
		if s.Kind != "Secret" || s.Namespace != "toolbus" || len(s.Data) != 0 {
			t.Errorf("secrets.example.yaml: %s %s in %q: want Secrets in toolbus with stringData", s.Kind, s.Name, s.Namespace)
		}
		for k, v := range s.StringData {
			if !strings.HasPrefix(v, "PLACEHOLDER") {
				t.Errorf("secrets.example.yaml: %s/%s is not marked PLACEHOLDER", s.Name, k)
			}
			out[s.Name] = append(out[s.Name], k)
		}
	}
	return out
}

func selects(sel map[string]string, d *appsv1.Deployment) bool {
	return len(sel) > 0 && labels.SelectorFromSet(sel).Matches(labels.Set(d.Spec.Template.Labels))
}

func selectorMatches(t *testing.T, sel *metav1.LabelSelector, d *appsv1.Deployment) bool {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Error(err)
		return false
	}
	return !s.Empty() && s.Matches(labels.Set(d.Spec.Template.Labels))
}
