package validate

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/toolbus/toolbus/contracts/config"
)

// root is the toolbus repository, relative to this package.
const root = "../.."

func repoPath(parts ...string) string { return filepath.Join(append([]string{root}, parts...)...) }

func readFile(t *testing.T, parts ...string) []byte {
	t.Helper()
	data, err := os.ReadFile(repoPath(parts...))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// knownEnv are the environment variables the binaries read (contracts/config).
var knownEnv = []string{
	config.EnvListen, config.EnvNATSURL, config.EnvMetricsListen,
	config.EnvSealPublicKeys, config.EnvSealPublicKeys + "_FILE",
	config.EnvSealPrivateKeys, config.EnvSealPrivateKeys + "_FILE",
}

func knownToolbusEnv(name string) bool { return slices.Contains(knownEnv, name) }

// decodeConfig parses a toolbus config.yaml the way the binaries do, under
// --strict: a key the binaries would warn about fails the test.
func decodeConfig(t *testing.T, data []byte) *config.File {
	t.Helper()
	cfg, _, err := config.Parse(data, config.Options{Strict: true})
	if err != nil {
		t.Fatalf("config.yaml: %v", err)
	}
	return cfg
}

// natsConfVars are the variables ($NAME) deploy/nats/*.conf read from the
// environment: the role passwords, and the node name of the cluster config.
func natsConfVars(t *testing.T) []string {
	t.Helper()
	var vars []string
	re := regexp.MustCompile(`(?m)^[^#]*?[:=]\s*\$([A-Z][A-Z0-9_]*)\s*$`)
	for _, f := range []string{"toolbus.conf", "cluster.conf"} {
		for _, m := range re.FindAllSubmatch(readFile(t, "deploy", "nats", f), -1) {
			if v := string(m[1]); !slices.Contains(vars, v) {
				vars = append(vars, v)
			}
		}
	}
	slices.Sort(vars)
	return vars
}

// natsPasswordVars maps each NATS user of toolbus.conf to the variable
// holding its password.
func natsPasswordVars(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	re := regexp.MustCompile(`user:\s*(\w+)\s*\n\s*password:\s*\$([A-Z][A-Z0-9_]*)`)
	for _, m := range re.FindAllSubmatch(readFile(t, "deploy", "nats", "toolbus.conf"), -1) {
		out[string(m[1])] = string(m[2])
	}
	if len(out) == 0 {
		t.Fatal("no user with a password variable in toolbus.conf")
	}
	return out
}

// loadNATSConf parses a NATS config file with every password variable set,
// as the node nats-1.
func loadNATSConf(t *testing.T, path string) *server.Options {
	t.Helper()
	return loadNATSNode(t, path, "nats-1")
}

// loadNATSNode parses a NATS config file with every password variable set,
// as the node named name (NATS_SERVER_NAME, as docker-compose.yml sets it).
func loadNATSNode(t *testing.T, path, name string) *server.Options {
	t.Helper()
	for _, v := range natsPasswordVars(t) {
		t.Setenv(v, "pw-"+v)
	}
	t.Setenv("NATS_SERVER_NAME", name)
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return opts
}

// toolbusAccount is the NATS account toolbus's users belong to.
func toolbusAccount(t *testing.T) string {
	t.Helper()
	opts := loadNATSConf(t, repoPath("deploy", "nats", "toolbus.conf"))
	for _, u := range opts.Users {
		if u.Username == "worker" && u.Account != nil {
			return u.Account.Name
		}
	}
	t.Fatal("toolbus.conf: no worker user in an account")
	return ""
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return n
}
