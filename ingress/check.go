package main

import (
	"errors"
	"flag"
	"fmt"
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
	fs := flag.NewFlagSet("ingress check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(fs.Output(), checkUsage); fs.PrintDefaults() }
	configPath := fs.String("config", "", "configuration file to check")
	strict := fs.Bool("strict", false, "treat every warning as an error")
	dev := fs.Bool("dev", false, "check the file for --dev (no sealing key needed)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *configPath == "" || fs.NArg() > 0 {
		fs.Usage()
		return errors.New("check: --config FILE is required, and nothing else")
	}
	cfg, warnings, err := loadConfig(*configPath, *strict, getenv)
	printWarnings(stderr, warnings)
	if err == nil {
		err = checkStartup(cfg, *dev)
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

// printWarnings writes check's warnings, one line each.
func printWarnings(w io.Writer, warnings []config.Warning) {
	for _, warning := range warnings {
		fmt.Fprintf(w, "warning: %s\n", warning)
	}
}
