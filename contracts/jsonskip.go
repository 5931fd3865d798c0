package contracts

import "bytes"

// Walking text that ScanJSON has already accepted: these assume valid JSON
// and check nothing, so that a caller that reads a few members of a
// validated object does not decode it again.

// SkipJSONSpace returns the index of the first byte at or after i that is
// not JSON whitespace (len(data) if none).
func SkipJSONSpace(data []byte, i int) int { return skipSpace(data, i) }

// JSONValueEnd returns the end of the valid JSON value that starts at i.
func JSONValueEnd(data []byte, i int) int {
	switch data[i] {
	case '"':
		return jsonStringEnd(data, i+1)
	case '{', '[':
		depth := 0
		for ; ; i++ {
			switch data[i] {
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			case '"':
				i = jsonStringEnd(data, i+1) - 1
			}
		}
	}
	for i < len(data) {
		switch data[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

// jsonStringEnd returns the index after the closing quote of the valid
// JSON string whose contents start at i.
func jsonStringEnd(data []byte, i int) int {
	for {
		k := bytes.IndexAny(data[i:], `"\`)
		if data[i+k] == '"' {
			return i + k + 1
		}
		i += k + 2 // a backslash and the byte it escapes (\uXXXX's digits are plain)
	}
}
