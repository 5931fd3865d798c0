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

// EachJSONMember calls f with the key (as written between its quotes,
// escapes not decoded) and the value of each member of the JSON object obj,
// text that ScanJSON accepted, in order, until f returns false. known, if
// not nil, returns the end of the value that starts at a given offset of
// obj when the caller already has it (a scanned span, so that a large value
// is not walked again), or -1. It reports false when obj is not an object.
// (Callbacks rather than an iterator: neither escapes, so a walk allocates
// nothing.)
func EachJSONMember(obj []byte, known func(start int) int, f func(key, value []byte) bool) bool {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return false
	}
	i = skipSpace(obj, i+1)
	if obj[i] == '}' {
		return true
	}
	for {
		j := jsonStringEnd(obj, i+1)
		key := obj[i+1 : j-1]
		i = skipSpace(obj, skipSpace(obj, j)+1) // past the ':'
		end := -1
		if known != nil {
			end = known(i)
		}
		if end < 0 {
			end = JSONValueEnd(obj, i)
		}
		if !f(key, obj[i:end]) {
			return true
		}
		i = skipSpace(obj, end)
		if obj[i] == '}' {
			return true
		}
		i = skipSpace(obj, i+1) // past the ','
	}
}
