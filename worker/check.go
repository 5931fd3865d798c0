package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/toolbus/toolbus/contracts/config"
)

const checkUsage = `usage: worker check --config FILE [--servers a,b] [--strict]

Validates the configuration as the worker would at start (os.environ/NAME
values resolved, environment overrides applied, sealing private keys read),
prints the effective configuration as YAML with every secret redacted on
stdout, and every warning on stderr. Exits non-zero when the configuration
has an error (under --strict, a warning too).`

// runCheck is `worker check`.
func runCheck(args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("worker check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(fs.Output(), checkUsage); fs.PrintDefaults() }
	configPath := fs.String("config", "", "configuration file to check")
	servers := fs.String("servers", "", "comma-separated servers the worker would serve")
	strict := fs.Bool("strict", false, "treat every warning as an error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *configPath == "" || fs.NArg() > 0 {
		fs.Usage()
		return errors.New("check: --config FILE is required, and nothing else")
	}
	cfg, warnings, err := loadConfig(*configPath, *servers, *strict, getenv)
	for _, w := range warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if err == nil {
		err = checkStartup(cfg)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: invalid\n", *configPath)
		return err
	}
	if err := cfg.WriteEffective(stdout); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "%s: valid, %d warning(s)\n", *configPath, len(warnings))
	return nil
}

// checkStartup checks what run checks before it connects: the sealing
// private keys and the NATS TLS files. Errors never echo key material.
func checkStartup(cfg *config.File) error {
	var errs []error
	keys, err := cfg.Seal.ParsePrivateKeys()
	switch {
	case err != nil:
		errs = append(errs, err)
	case len(keys) == 0:
		errs = append(errs, errors.New("no sealing private key: set seal.private_keys, seal.private_keys_file or "+config.EnvSealPrivateKeys))
	}
	if cfg.NATS.TLS.Enabled() {
		if _, err := cfg.NATS.TLS.Config(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
