package contracts_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/toolbus/toolbus/contracts"
)

// The ingress seals the user's credential to the workers' public key, bound
// to the request; a worker opens it with the binding rebuilt from the
// message it received. Any other binding - another server, tool, reply
// subject - does not open.
func ExampleSealer_Seal() {
	key, err := contracts.GenerateKeyPair() // the worker's; ingresses get key.Public()
	if err != nil {
		panic(err)
	}
	now := time.Now()
	req := &contracts.CallRequest{
		RequestHeader: contracts.RequestHeader{Type: contracts.TypeCallRequest, RequestID: "req-1", Server: "jira",
			KeyID: "team-a", TimeoutMS: 30000, ExpiresUnixMS: now.Add(time.Minute).UnixMilli()},
		Tool: "create_issue",
	}
	const replyTo = "_INBOX.ingress-1.req-1"
	req.Token, err = contracts.NewSealer(key.Public(), 0).Seal(contracts.NewToken("Bearer user-token"), req.Binding(replyTo))
	if err != nil {
		panic(err)
	}

	opener := contracts.NewOpener(key)
	token, err := opener.Open(req.Token, req.Binding(replyTo), now)
	fmt.Println(token.Reveal()["authorization"], err)

	req.Tool = "delete_issue" // moved to another tool after sealing
	_, err = opener.Open(req.Token, req.Binding(replyTo), now)
	fmt.Println(errors.Is(err, contracts.ErrSealInvalid))
	// Output:
	// Bearer user-token <nil>
	// true
}

// A synchronous message travels as a header value and a body (Wire): it is
// encoded with EncodeRequest or EncodeReply and decoded (and validated)
// with its Decode function; a reply is built with its New function.
func ExampleDecodeCallRequest() {
	w, err := contracts.EncodeRequest(&contracts.CallRequest{
		RequestHeader: contracts.RequestHeader{Type: contracts.TypeCallRequest, RequestID: "req-1", Server: "jira",
			KeyID: "team-a", TimeoutMS: 30000},
		Tool: "create_issue", Arguments: json.RawMessage(`{"summary": "New ticket"}`),
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(contracts.HeaderRequest+":", w.Header)
	fmt.Println(string(w.Body))

	req, err := contracts.DecodeCallRequest(w)
	fmt.Println(req.Server, req.Tool, req.Timeout(), string(req.Arguments), err)

	_, err = contracts.DecodeCallRequest(contracts.Wire{Header: `{"type":"toolbus.call.request.v2","request_id":"req-2"}`})
	fmt.Println(err)

	reply, _ := contracts.EncodeReply(contracts.NewCallResponse(req.RequestID, nil, contracts.NewError(contracts.CodeForbidden, "not for team-a")))
	fmt.Println(contracts.HeaderReply+":", reply.Header, len(reply.Body))
	// Output:
	// Toolbus-Request: {"type":"toolbus.call.request.v2","request_id":"req-1","server":"jira","key_id":"team-a","timeout_ms":30000,"expires_unix_ms":0,"tool":"create_issue"}
	// {"summary": "New ticket"}
	// jira create_issue 30s {"summary": "New ticket"} <nil>
	// bad message: invalid server name
	// Toolbus-Reply: {"type":"toolbus.call.response.v2","request_id":"req-1","error":{"code":"forbidden","message":"not for team-a","retryable":false}} 0
}
