package config

import (
	"fmt"
	"os"
	"strings"

	"github.com/toolbus/toolbus/contracts"
)

// Environment variables that override the file. Each secret one also has a
// _FILE variant naming a file that holds the value, so secrets stay out of
// process listings.
const (
	EnvListen          = "TOOLBUS_LISTEN"
	EnvNATSURL         = "TOOLBUS_NATS_URL"
	EnvSealPublicKeys  = "TOOLBUS_SEAL_PUBLIC_KEYS"
	EnvSealPrivateKeys = "TOOLBUS_SEAL_PRIVATE_KEYS"
	EnvMetricsListen   = "TOOLBUS_METRICS_LISTEN"
)

// ApplyEnv overrides the file with the environment. getenv is os.Getenv in
// the binaries and a map lookup in tests.
func (f *File) ApplyEnv(getenv func(string) string) error {
	if v := getenv(EnvListen); v != "" {
		f.Ingress.Listen = v
	}
	if v := getenv(EnvNATSURL); v != "" {
		f.NATS.URL = v
	}
	if v := getenv(EnvMetricsListen); v != "" {
		f.Worker.MetricsListen = v
	}
	pub, err := secretEnv(getenv, EnvSealPublicKeys)
	if err != nil {
		return err
	}
	if pub != "" {
		f.Seal.PublicKeys = splitList(pub)
	}
	priv, err := secretEnv(getenv, EnvSealPrivateKeys)
	if err != nil {
		return err
	}
	if priv != "" {
		f.Seal.PrivateKeys = splitList(priv)
	}
	return nil
}

// secretEnv reads NAME, or the file named by NAME_FILE.
func secretEnv(getenv func(string) string, name string) (string, error) {
	if v := getenv(name); v != "" {
		return v, nil
	}
	path := getenv(name + "_FILE")
	if path == "" {
		return "", nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s_FILE: %w", name, err)
	}
	return strings.TrimSpace(string(data)), nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' || r == ' ' }) {
		out = append(out, strings.TrimSpace(f))
	}
	return out
}

// ParsePublicKeys parses the recipient keys; the first one seals.
func (s *Seal) ParsePublicKeys() ([]*contracts.PublicKey, error) {
	var keys []*contracts.PublicKey
	for i, text := range s.PublicKeys {
		k, err := contracts.ParsePublicKey(text)
		if err != nil {
			return nil, fmt.Errorf("seal.public_keys[%d]: %w", i, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// ParsePrivateKeys parses the keys a worker opens with, from private_keys
// and private_keys_file. Errors never echo key material.
func (s *Seal) ParsePrivateKeys() ([]*contracts.PrivateKey, error) {
	texts := s.PrivateKeys
	if s.PrivateKeysFile != "" {
		data, err := os.ReadFile(s.PrivateKeysFile)
		if err != nil {
			return nil, fmt.Errorf("seal.private_keys_file: %w", err)
		}
		texts = append(texts, splitList(string(data))...)
	}
	var keys []*contracts.PrivateKey
	for i, text := range texts {
		k, err := contracts.ParsePrivateKey(text)
		if err != nil {
			return nil, fmt.Errorf("seal private key #%d: %w", i+1, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}
