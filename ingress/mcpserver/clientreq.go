package mcpserver

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/toolbus/toolbus/contracts"
)

// Requests from the upstream to the client during a tool call (sampling,
// elicitation; contracts.ClientRequest) reach the client on the call's SSE
// answer as JSON-RPC requests whose id names the server, the call and the
// request (contracts.ClientRequestRPCID). The client POSTs its answer to
// the endpoint, on any replica: clientAnswer publishes it to the worker
// waiting for it, with the caller's key and credential fingerprint, which
// the worker checks against the call's.
//
// Which requests a client answers is what it declared at initialize. The
// endpoint keeps no session state, so the declaration travels in the
// session id it issues: 128 random bits, then "-" and a letter per
// capability (s: sampling, e: elicitation). A call is relayed with those
// capabilities only (the worker uses an upstream client that declares
// exactly them), and only when its answer is an SSE stream.

// sessionCapLetters maps a session id's capability letters to the methods.
var sessionCapLetters = map[byte]string{'s': "sampling/createMessage", 'e': "elicitation/create"}

// newSessionIDFor returns an Mcp-Session-Id for a client that declared
// capabilities (the params.capabilities of its initialize). The endpoint
// keeps nothing per session, so any replica accepts any id; it scopes the
// request ids of cancellable calls and carries the capabilities.
func newSessionIDFor(capabilities json.RawMessage) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	var caps struct {
		Sampling    json.RawMessage `json:"sampling"`
		Elicitation json.RawMessage `json:"elicitation"`
	}
	if json.Unmarshal(capabilities, &caps) != nil {
		return id
	}
	var letters string
	if declared(caps.Sampling) {
		letters += "s"
	}
	if declared(caps.Elicitation) {
		letters += "e"
	}
	if letters != "" {
		id += "-" + letters
	}
	return id
}

// declared reports whether a capability is present (any object).
func declared(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '{'
}

// sessionClientRequests returns the client requests the client of session
// answers, from the session id.
func sessionClientRequests(session string) []string {
	_, letters, ok := strings.Cut(session, "-")
	if !ok || len(letters) > len(sessionCapLetters) {
		return nil
	}
	var out []string
	for i := 0; i < len(letters); i++ {
		if m, ok := sessionCapLetters[letters[i]]; ok {
			out = append(out, m)
		}
	}
	return out
}

// request is a JSON-RPC request the gateway sends.
type request struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      string          `json:"id"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params,omitempty"`
}

// relayClientRequest sends the upstream's request r, made during the call
// requestID on server, to the client. When the client cannot be reached,
// the worker is answered with an error at once rather than left waiting.
func (x *exchange) relayClientRequest(server, requestID string, r *contracts.ClientRequest) {
	data, err := json.Marshal(request{
		JSONRPC: "2.0", ID: contracts.ClientRequestRPCID(server, requestID, r.ID), Method: r.Method, Params: r.Params,
	})
	if err == nil && x.emit != nil && x.emit(data) {
		return
	}
	err = x.s.d.Answer(&contracts.ClientAnswer{
		RequestID: requestID, ID: r.ID, KeyID: x.caller.Key.Name, TokenFP: x.tokenFP(server), Caller: x.owner(),
		Error: &contracts.RPCError{Code: codeInternalError, Message: "the MCP client can no longer be reached"},
	})
	if err != nil { // the worker waits until the call's deadline instead
		x.s.log.Warn().Err(err).Str("request_id", requestID).Msg("client request: the refusal could not be sent")
	}
}

// tokenFP is the fingerprint of the caller's credential for server.
func (x *exchange) tokenFP(server string) string {
	srv := x.s.cfg.MCPServers[server]
	if srv == nil {
		return ""
	}
	return x.token(srv).Fingerprint()
}

// clientAnswer takes a JSON-RPC response from the client. An answer to a
// relayed request goes to the worker waiting for it; anything else is
// acknowledged and dropped, as before (the gateway sends no other
// requests). It writes the HTTP response.
func (x *exchange) clientAnswer(m *message) {
	var rpcID string
	server, requestID, id, ok := "", "", "", json.Unmarshal(m.ID, &rpcID) == nil
	if ok {
		server, requestID, id, ok = contracts.ParseClientRequestRPCID(rpcID)
	}
	if !ok {
		writeStatus(x.c, http.StatusAccepted)
		return
	}
	if x.s.cfg.MCPServers[server] == nil || !x.caller.Key.AllowsServer(server) || !x.reaches(server) {
		x.s.abort(x.c, contracts.NewError(contracts.CodeForbidden, "the answer names a request of a server this endpoint and key do not reach"))
		return
	}
	a := &contracts.ClientAnswer{RequestID: requestID, ID: id, KeyID: x.caller.Key.Name, TokenFP: x.tokenFP(server), Caller: x.owner()}
	if len(m.Error) > 0 {
		var e contracts.RPCError
		if json.Unmarshal(m.Error, &e) != nil || e.Message == "" {
			x.s.abort(x.c, contracts.NewError(contracts.CodeInvalidRequest, "the answer's error is not a JSON-RPC error object"))
			return
		}
		a.Error = &e
	} else {
		result := bytes.TrimSpace(m.Result)
		if len(result) == 0 || result[0] != '{' {
			x.s.abort(x.c, contracts.NewError(contracts.CodeInvalidRequest, "the answer's result must be an object"))
			return
		}
		a.Result = result
	}
	if err := x.s.d.Answer(a); err != nil {
		x.s.log.Warn().Err(err).Str("request_id", requestID).Msg("client answer not published")
		x.s.abort(x.c, contracts.NewError(contracts.CodeNoWorkers, "the answer could not be handed to the worker; send it again"))
		return
	}
	writeStatus(x.c, http.StatusAccepted)
}
