package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// Check is the `check` subcommand both binaries have (`ingress check`,
// `worker check`): it validates a configuration as the binary would at
// start, prints the effective configuration as YAML with every secret
// redacted on stdout and every warning on stderr, and fails when the
// configuration has an error (under --strict, a warning too), as
// `nats-server -t` and `promtool check config` do.
type Check struct {
	// Name is the command line's name ("ingress check"); Usage its help.
	Name, Usage string
	// Flags adds the binary's own flags to the flag set.
	Flags func(fs *flag.FlagSet)
	// Load reads, completes and validates the file as the binary does.
	Load func(path string, strict bool) (*File, []Warning, error)
	// Startup checks what the binary checks before it connects (sealing
	// keys, TLS files). Its errors never echo key material.
	Startup func(*File) error
}

// Run parses args and checks the configuration they name.
func (c Check) Run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(c.Name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(fs.Output(), c.Usage); fs.PrintDefaults() }
	path := fs.String("config", "", "configuration file to check")
	strict := fs.Bool("strict", false, "treat every warning as an error")
	if c.Flags != nil {
		c.Flags(fs)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *path == "" || fs.NArg() > 0 {
		fs.Usage()
		return errors.New("check: --config FILE is required, and nothing else")
	}
	cfg, warnings, err := c.Load(*path, *strict)
	PrintWarnings(stderr, warnings)
	if err == nil && c.Startup != nil {
		err = c.Startup(cfg)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: invalid\n", *path)
		return err
	}
	if err := cfg.WriteEffective(stdout); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "%s: valid, %d warning(s)\n", *path, len(warnings))
	return nil
}

// PrintWarnings writes warnings for a person, one line each: the key's path
// and the message, never a value.
func PrintWarnings(w io.Writer, warnings []Warning) {
	for _, warning := range warnings {
		fmt.Fprintf(w, "warning: %s\n", warning)
	}
}
