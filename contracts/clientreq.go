package contracts

import (
	"encoding/json"
	"slices"
	"strings"
)

// Requests from an upstream MCP server to the MCP client during a tool call
// (sampling, elicitation) cross NATS as two messages. The worker publishes
// the request as a CallEvent with Request set on the call's EventsTo
// subject; the ingress holding the call's stream sends it to the client as
// a JSON-RPC request whose id (ClientRequestRPCID) names the server, the
// call and the request. The client's answer is a POST that any ingress
// replica may receive: it publishes a ClientAnswer on AnswerSubject, which
// the worker waiting for it subscribed to. The worker takes an answer only
// from the gateway key and the user credential (by fingerprint) of the call
// itself.

// TypeClientAnswer is the type of a ClientAnswer.
const TypeClientAnswer = "toolbus.client.answer.v1"

// ClientRequestMethods are the MCP requests an upstream may send to the
// client during a call, relayed through the gateway.
var ClientRequestMethods = []string{"sampling/createMessage", "elicitation/create"}

// ClientRequestAllowed reports whether method may be relayed to a client.
func ClientRequestAllowed(method string) bool { return slices.Contains(ClientRequestMethods, method) }

// ClientRequest is a request from the upstream to the client, in a
// CallEvent.
type ClientRequest struct {
	// ID is the worker's name for the request: a subject token, unique and
	// unguessable, which the answer must repeat.
	ID     string          `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params,omitempty"`
}

// ClientAnswer is the client's answer to a ClientRequest, published on
// AnswerSubject(RequestID, ID): exactly one of Result and Error.
type ClientAnswer struct {
	Type      string `json:"type"`
	RequestID string `json:"request_id"`
	ID        string `json:"id"`
	// KeyID and TokenFP name the gateway key and the fingerprint of the
	// user credential of the request that carried the answer; the worker
	// refuses an answer whose caller is not the call's.
	KeyID   string `json:"key_id"`
	TokenFP string `json:"token_fp,omitempty"`
	// Caller is the identity of the caller who answered (as
	// RequestHeader.Caller); when the call named its caller, the worker
	// takes only an answer of that caller.
	Caller string          `json:"caller,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *RPCError       `json:"error,omitempty"`
}

// RPCError is a JSON-RPC error object as a client sent it.
type RPCError struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// ValidClientRequestID reports whether id may be a ClientRequest's ID (a
// subject token).
func ValidClientRequestID(id string) bool { return validToken(id) }

// clientRPCPrefix starts the JSON-RPC id of a relayed client request.
const clientRPCPrefix = "toolbus:"

// ClientRequestRPCID is the JSON-RPC id under which the ingress sends the
// client request id of the call requestID to server to the client. The
// client repeats it in its answer, which lets any ingress replica route the
// answer without state.
func ClientRequestRPCID(server, requestID, id string) string {
	return clientRPCPrefix + ServerToken(server) + ":" + requestID + ":" + id
}

// ParseClientRequestRPCID is the inverse of ClientRequestRPCID.
func ParseClientRequestRPCID(s string) (server, requestID, id string, ok bool) {
	rest, ok := strings.CutPrefix(s, clientRPCPrefix)
	if !ok {
		return "", "", "", false
	}
	parts := strings.Split(rest, ":")
	if len(parts) != 3 || !validToken(parts[1]) || !validToken(parts[2]) {
		return "", "", "", false
	}
	if server, ok = ServerFromToken(parts[0]); !ok {
		return "", "", "", false
	}
	return server, parts[1], parts[2], true
}

// maxAnswerLen bounds an answer's size.
const maxAnswerLen = 4 << 20

// DecodeClientAnswer decodes and validates a ClientAnswer.
func DecodeClientAnswer(data []byte) (*ClientAnswer, error) {
	if len(data) > maxAnswerLen {
		return nil, badMessage("answer larger than %d bytes", maxAnswerLen)
	}
	return decodeValid[ClientAnswer](data)
}

// Validate checks a ClientAnswer's fields.
func (a *ClientAnswer) Validate() error {
	if err := checkType(a.Type, TypeClientAnswer); err != nil {
		return err
	}
	switch {
	case !validToken(a.RequestID) || !validToken(a.ID):
		return badMessage("invalid request id or answer id")
	case len(a.KeyID) > maxIDLen:
		return badMessage("key_id longer than %d bytes", maxIDLen)
	case (len(a.Result) > 0) == (a.Error != nil):
		return badMessage("exactly one of result and error")
	case len(a.Result) > 0 && !isJSONObject(a.Result):
		return badMessage("result must be a JSON object")
	}
	return nil
}
