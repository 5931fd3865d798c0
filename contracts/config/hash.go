package config

import (
	"crypto/sha256"
	"encoding/hex"
)

// HashKey returns the hex SHA-256 of a gateway key, the form keys are stored
// and compared in.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}
