package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/ingress/auth"
)

const keysUsage = `usage:
  ingress keys create --name NAME [--servers a,b] [--tools a-x,b-y] [--resources a-URI,...] [--prompts a-p,...] [--config FILE]
  ingress keys list [--config FILE]
  ingress keys revoke --name NAME [--config FILE]
  ingress keys import FILE [--config FILE] [--unrestricted none|all] [--dry-run]

Managed gateway keys are stored (as SHA-256 only) in NATS; every ingress
replica picks up a change within moments, without a restart. The NATS URL
comes from --config or TOOLBUS_NATS_URL.

keys import reads a LiteLLM virtual-key export (JSON or CSV of
LiteLLM_VerificationToken rows with their MCP permissions; see
docs/litellm.md) and stores each key's SHA-256 as LiteLLM has it, so
applications keep their keys. --config names the servers and access groups
the keys' permissions refer to. Every bad row is reported by line and
nothing is stored unless every row is good.`

// runKeys is the `ingress keys` command.
func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		return errors.New(keysUsage)
	}
	verb, rest := args[0], args[1:]
	file := ""
	if verb == "import" && len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		file, rest = rest[0], rest[1:]
	}
	fs := flag.NewFlagSet("keys "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file (for nats.url)")
	name := fs.String("name", "", "the key's name (its id in logs and job ownership)")
	servers := fs.String("servers", "", "servers the key may use, comma-separated (default: all)")
	resources := fs.String("resources", "", "resources the key may use, as <server>-<uri> or a bare URI (a trailing * matches a prefix; * alone, every one), comma-separated (default: all, or none with --tools)")
	prompts := fs.String("prompts", "", "prompts the key may use, as <server>-<name> or a bare name (* for every one), comma-separated (default: all, or none with --tools)")
	tools := fs.String("tools", "", "tools the key may use as <server>-<tool>, or a bare tool name for that tool on each of its servers (needs --config), comma-separated (default: all)")
	unrestricted := fs.String("unrestricted", "none", "import: what a key without MCP permissions may use: none (as LiteLLM) or all")
	dryRun := fs.Bool("dry-run", false, "import: check the export and print what would be stored, storing nothing")
	accessGroups := fs.String("access-groups", "", "create: access groups the key may use, comma-separated")
	var limits contracts.KeyLimits // create: the key's fair share (docs/security.md#fair-shares)
	fs.IntVar(&limits.MaxRequests, "max-requests", 0, "create: the key's API requests in flight (0: ingress.key_limits; -1: no limit)")
	fs.IntVar(&limits.MaxServerCalls, "max-server-calls", 0, "create: the key's calls in flight to any one server (0: ingress.key_limits; -1: no limit)")
	fs.IntVar(&limits.MaxStreams, "max-streams", 0, "create: the key's MCP streams and long polls (0: ingress.key_limits; -1: no limit)")
	fs.Float64Var(&limits.RequestsPerSecond, "requests-per-second", 0, "create: the key's request rate (0: ingress.key_limits; -1: no limit)")
	fs.IntVar(&limits.Burst, "burst", 0, "create: the key's request burst (0: ingress.key_limits)")
	var idLimits contracts.KeyLimits // create: each caller identity's share within the key
	fs.IntVar(&idLimits.MaxRequests, "identity-max-requests", 0, "create: each caller's API requests in flight (0: ingress.identity_limits; -1: no limit)")
	fs.IntVar(&idLimits.MaxServerCalls, "identity-max-server-calls", 0, "create: each caller's calls in flight to any one server (0: ingress.identity_limits; -1: no limit)")
	fs.IntVar(&idLimits.MaxStreams, "identity-max-streams", 0, "create: each caller's MCP streams and long polls (0: ingress.identity_limits; -1: no limit)")
	fs.Float64Var(&idLimits.RequestsPerSecond, "identity-requests-per-second", 0, "create: each caller's request rate (0: ingress.identity_limits; -1: no limit)")
	fs.IntVar(&idLimits.Burst, "identity-burst", 0, "create: each caller's request burst (0: ingress.identity_limits)")
	if err := fs.Parse(rest); err != nil {
		return err
	}
	if limits.Burst < 0 {
		return errors.New("--burst: negative")
	}
	if idLimits.Burst < 0 {
		return errors.New("--identity-burst: negative")
	}
	if verb == "import" && file == "" {
		if file = fs.Arg(0); file == "" {
			return errors.New(keysUsage)
		}
	}
	var plan *importPlan
	if verb == "import" {
		p, err := readImport(file, *configPath, *unrestricted, getenv, stderr)
		if err != nil {
			return err
		}
		for _, n := range p.notes {
			fmt.Fprintln(stdout, n)
		}
		if *dryRun {
			fmt.Fprintf(stdout, "dry run: %d keys to store, %d to revoke; nothing stored\n", len(p.keys), len(p.revoke))
			return nil
		}
		plan = p
	}
	cfg, warnings, err := loadConfig(*configPath, false, getenv)
	config.PrintWarnings(stderr, warnings)
	if err != nil {
		return err
	}
	var mk contracts.ManagedKey
	if verb == "create" {
		if mk, err = createChecks(cfg, *name, splitCSV(*servers), splitCSV(*tools), splitCSV(*resources), splitCSV(*prompts)); err != nil {
			return err
		}
	}
	nc, err := connectNATS(cfg.NATS, zerolog.Nop())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()

	switch verb {
	case "create":
		for _, g := range splitCSV(*accessGroups) {
			if _, ok := cfg.AccessGroups()[g]; !ok {
				return fmt.Errorf("--access-groups: no server of --config declares the access group %q", g)
			}
		}
		mk.AccessGroups = splitCSV(*accessGroups)
		if limits != (contracts.KeyLimits{}) {
			mk.Limits = &limits
		}
		if idLimits != (contracts.KeyLimits{}) {
			mk.IdentityLimits = &idLimits
		}
		key, err := auth.CreateManagedKey(ctx, js, cfg.Jobs.Replicas, mk)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "created gateway key %q (shown once; toolbus stores only its SHA-256):\n%s\n", *name, key)
	case "list":
		keys, err := auth.ListKeys(ctx, js)
		if err != nil {
			return err
		}
		for _, k := range keys {
			line := fmt.Sprintf("%s\tservers=%s\ttools=%s\tcreated=%s", k.Name, orAll(k.Servers), orAll(k.Tools), k.CreatedAt.Format(time.RFC3339))
			if len(k.AccessGroups) > 0 {
				line += "\taccess_groups=" + strings.Join(k.AccessGroups, ",")
			}
			if k.Limits != nil {
				line += fmt.Sprintf("\tlimits=%+v", *k.Limits)
			}
			if k.IdentityLimits != nil {
				line += fmt.Sprintf("\tidentity_limits=%+v", *k.IdentityLimits)
			}
			if k.Source != "" {
				line += "\tsource=" + k.Source
			}
			fmt.Fprintln(stdout, line)
		}
	case "import":
		res, err := auth.ImportKeys(ctx, js, cfg.Jobs.Replicas, plan.keys, plan.revoke)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "imported %d keys (%d new, %d replaced), revoked %d\n", res.Created+res.Replaced, res.Created, res.Replaced, res.Revoked)
	case "revoke":
		if err := auth.RevokeKey(ctx, js, *name); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked gateway key %q\n", *name)
	default:
		return errors.New(keysUsage)
	}
	return nil
}

// readImport reads and checks an export against the configuration.
func readImport(file, configPath, unrestricted string, getenv func(string) string, stderr io.Writer) (*importPlan, error) {
	if unrestricted != "none" && unrestricted != "all" {
		return nil, errors.New("--unrestricted: none or all")
	}
	cfg, _, err := loadConfig(configPath, false, getenv)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	rows, err := parseLiteLLMExport(data)
	if err != nil {
		return nil, fmt.Errorf("%s: nothing imported:\n%w", file, err)
	}
	plan, err := planImport(cfg, rows, unrestricted == "all", time.Now())
	if err != nil {
		return nil, fmt.Errorf("%s: nothing imported:\n%w", file, err)
	}
	return plan, nil
}

// createChecks refuses a managed key that would share its name with a
// configured key (names identify owners) or whose tools, resources or
// prompts are ambiguous, and returns its record: the tool names shown and
// the (server, name) pairs checked.
func createChecks(cfg *config.File, name string, servers, tools, resources, prompts []string) (contracts.ManagedKey, error) {
	mk := contracts.ManagedKey{Name: name, Servers: servers}
	if slices.ContainsFunc(cfg.Keys, func(k config.Key) bool { return k.Name == name }) {
		return mk, fmt.Errorf("a configured key is named %q: names identify owners, pick another", name)
	}
	var err error
	if len(tools) > 0 {
		if mk.ToolRefs, err = cfg.KeyToolRefs(servers, tools); err != nil {
			return mk, fmt.Errorf("--tools: %w", err)
		}
		if len(mk.ToolRefs) == 0 {
			return mk, errors.New("--tools names no tool of a server the key may use: name them <server>-<tool>, with --config naming the servers")
		}
		mk.Tools = cfg.KeyToolNames(servers, tools)
	}
	if mk.ResourceRefs, err = cfg.KeyToolRefs(servers, resources); err != nil {
		return mk, fmt.Errorf("--resources: %w", err)
	}
	if mk.PromptRefs, err = cfg.KeyToolRefs(servers, prompts); err != nil {
		return mk, fmt.Errorf("--prompts: %w", err)
	}
	return mk, nil
}

func splitCSV(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func orAll(items []string) string {
	if len(items) == 0 {
		return "all"
	}
	return strings.Join(items, ",")
}
