package frontdoor

import (
	"bytes"

	"github.com/toolbus/toolbus/contracts"
)

// CheckNumbers refuses, as invalid_request (not retryable), arguments with a
// number that is valid JSON but no float64 - 1e400, -1e400 -, which an MCP
// server decodes as one (Go's and JavaScript's JSON readers do) and then
// cannot read the request: caught here, on every door, it never reaches the
// bus. args must be valid JSON (every door has parsed the body); empty is
// none. It is one pass of contracts.ScanJSON; a door that has scanned its
// body already passes what that scan found (CallInput.Scanned) instead, and
// the arguments are not scanned again.
func CheckNumbers(args []byte) *contracts.Error {
	if len(bytes.TrimSpace(args)) == 0 {
		return nil
	}
	s, err := contracts.ScanJSON(args, nil)
	if err != nil {
		return contracts.NewError(contracts.CodeInvalidRequest, "the arguments are not valid JSON")
	}
	return overflowError(s.Overflow)
}

// overflowError is CheckNumbers' refusal of the number num (nil: none).
func overflowError(num []byte) *contracts.Error {
	if num == nil {
		return nil
	}
	return contracts.NewError(contracts.CodeInvalidRequest,
		"the arguments hold a number out of the range of a 64-bit float (%s)", Clip(string(num)))
}

// checkNumbers is CheckNumbers of in.Arguments, from the door's scan when
// it made one.
func (in *CallInput) checkNumbers() *contracts.Error {
	if in.Scanned != nil {
		return overflowError(in.Scanned.Overflow)
	}
	return CheckNumbers(in.Arguments)
}
