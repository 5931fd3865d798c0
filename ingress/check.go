package main

import (
	"errors"
	"flag"
	"io"

	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts/config"
)

const checkUsage = `usage: ingress check --config FILE [--strict] [--dev]

Validates the configuration as the ingress would at start (os.environ/NAME
values resolved, environment overrides applied), prints the effective
configuration as YAML with every secret redacted on stdout, and every
warning on stderr. Exits non-zero when the configuration has an error
(under --strict, a warning too).`

// runCheck is `ingress check`.
func runCheck(args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var dev bool
	return config.Check{
		Name: "ingress check", Usage: checkUsage,
		Flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&dev, "dev", false, "check the file for --dev (no sealing key needed)")
		},
		Load: func(path string, strict bool) (*config.File, []config.Warning, error) {
			return loadConfig(path, strict, getenv)
		},
		Startup: func(cfg *config.File) error { return checkStartup(cfg, dev) },
	}.Run(args, stdout, stderr)
}

// checkStartup checks what run checks before it connects: the sealing keys
// (outside dev mode) and the NATS TLS files.
func checkStartup(cfg *config.File, dev bool) error {
	var errs []error
	if !dev {
		keys, err := cfg.Seal.ParsePublicKeys()
		switch {
		case err != nil:
			errs = append(errs, err)
		case len(keys) == 0:
			errs = append(errs, errors.New("no sealing public key: set seal.public_keys or "+config.EnvSealPublicKeys+" (or check with --dev)"))
		}
	}
	if cfg.NATS.TLS.Enabled() {
		if _, err := cfg.NATS.TLS.Config(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// loadConfig reads the file (none: the dev-mode default), applies the
// environment and validates. The warnings are the loader's.
func loadConfig(path string, strict bool, getenv func(string) string) (*config.File, []config.Warning, error) {
	cfg := &config.File{}
	var warnings []config.Warning
	if path != "" {
		var err error
		if cfg, warnings, err = config.ReadFile(path, config.Options{Strict: strict, Getenv: getenv}); err != nil {
			return nil, warnings, err
		}
	}
	if err := cfg.ApplyEnv(getenv); err != nil {
		return nil, warnings, err
	}
	if err := cfg.Normalize(); err != nil {
		return nil, warnings, err
	}
	return cfg, warnings, nil
}

// logWarnings logs the configuration's warnings, one line each: the key's
// path and the message, never a value.
func logWarnings(log zerolog.Logger, warnings []config.Warning) {
	for _, w := range warnings {
		log.Warn().Str("path", w.Path).Msg("config: " + w.Message)
	}
}
