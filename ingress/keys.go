package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/ingress/auth"
)

const keysUsage = `usage:
  ingress keys create --name NAME [--servers a,b] [--tools a-x,b-y] [--config FILE]
  ingress keys list [--config FILE]
  ingress keys revoke --name NAME [--config FILE]

Managed gateway keys are stored (as SHA-256 only) in NATS; every ingress
replica picks up a change within moments, without a restart. The NATS URL
comes from --config or TOOLBUS_NATS_URL.`

// runKeys is the `ingress keys` command.
func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		return errors.New(keysUsage)
	}
	verb := args[0]
	fs := flag.NewFlagSet("keys "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file (for nats.url)")
	name := fs.String("name", "", "the key's name (its id in logs and job ownership)")
	servers := fs.String("servers", "", "servers the key may use, comma-separated (default: all)")
	tools := fs.String("tools", "", "tools the key may use as <server>-<tool>, or a bare tool name for that tool on each of its servers (needs --config), comma-separated (default: all)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg, warnings, err := loadConfig(*configPath, false, getenv)
	config.PrintWarnings(stderr, warnings)
	if err != nil {
		return err
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
		keyTools := splitCSV(*tools)
		if len(keyTools) > 0 {
			if keyTools = cfg.KeyToolNames(splitCSV(*servers), keyTools); len(keyTools) == 0 {
				return errors.New("--tools names no tool of a server the key may use: name them <server>-<tool>, with --config naming the servers")
			}
		}
		key, err := auth.CreateKey(ctx, js, cfg.Jobs.Replicas, *name, splitCSV(*servers), keyTools)
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
			fmt.Fprintf(stdout, "%s\tservers=%s\ttools=%s\tcreated=%s\n", k.Name, orAll(k.Servers), orAll(k.Tools), k.CreatedAt.Format(time.RFC3339))
		}
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
