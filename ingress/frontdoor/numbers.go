package frontdoor

import (
	"bytes"
	"errors"
	"strconv"

	"github.com/toolbus/toolbus/contracts"
)

// CheckNumbers refuses, as invalid_request (not retryable), arguments with a
// number that is valid JSON but no float64 - 1e400, -1e400 -, which an MCP
// server decodes as one (Go's and JavaScript's JSON readers do) and then
// cannot read the request: caught here, on every door, it never reaches the
// bus. args must be valid JSON (every door has parsed the body). It is one
// scan: string contents are skipped with IndexByte, and strconv.ParseFloat -
// what encoding/json uses - runs only on a number with an exponent or more
// than 308 characters, the only ones that can overflow.
func CheckNumbers(args []byte) *contracts.Error {
	for i := 0; i < len(args); {
		switch c := args[i]; {
		case c == '"':
			i = stringEnd(args, i+1)
		case c == '-' || c >= '0' && c <= '9':
			j, exp := i+1, false
			for j < len(args) {
				c := args[j]
				if c == 'e' || c == 'E' {
					exp = true
				} else if !(c >= '0' && c <= '9' || c == '.' || c == '+' || c == '-') {
					break
				}
				j++
			}
			if exp || j-i > maxPlainNumber {
				if _, err := strconv.ParseFloat(string(args[i:j]), 64); errors.Is(err, strconv.ErrRange) {
					return contracts.NewError(contracts.CodeInvalidRequest,
						"the arguments hold a number out of the range of a 64-bit float (%s)", Clip(string(args[i:j])))
				}
			}
			i = j
		default:
			i++
		}
	}
	return nil
}

// maxPlainNumber is the longest number without an exponent that cannot
// overflow a float64 (whose largest value has 309 digits).
const maxPlainNumber = 308

// stringEnd returns the index after the closing quote of the JSON string
// whose contents start at i (len(b) if it has none).
func stringEnd(b []byte, i int) int {
	for {
		q := bytes.IndexByte(b[i:], '"')
		if q < 0 {
			return len(b)
		}
		q += i
		// The quote is escaped if an odd number of backslashes precede it.
		n := 0
		for k := q - 1; k >= i && b[k] == '\\'; k-- {
			n++
		}
		if n%2 == 0 {
			return q + 1
		}
		i = q + 1
	}
}
