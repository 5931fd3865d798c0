package main

import (
	"errors"
	"flag"
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
	var servers string
	return config.Check{
		Name: "worker check", Usage: checkUsage,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&servers, "servers", "", "comma-separated servers the worker would serve")
		},
		Load: func(path string, strict bool) (*config.File, []config.Warning, error) {
			return loadConfig(path, servers, strict, getenv)
		},
		Startup: checkStartup,
	}.Run(args, stdout, stderr)
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
