package contracts

import "encoding/json"

// Resource subscriptions (resources/subscribe) outlive the request that
// makes them: the upstream sends notifications/resources/updated later, on
// its own stream, to the worker whose client subscribed. Those cross NATS as
// ServerNotifications on NotifySubject(server, subscriber), where the
// subscriber names the gateway key and the user credential (Subscriber);
// the ingress serving that caller's standalone stream (GET /<server>/mcp),
// on any replica, subscribes to it. resources/subscribe itself is an RPC
// (RPCMethods); resources/unsubscribe is an Unsubscribe announced to every
// worker of the server, since only the one holding the subscription can end
// it.

// Message types.
const (
	TypeServerNotification = "toolbus.server.notification.v1"
	TypeUnsubscribe        = "toolbus.unsubscribe.v1"
)

// MethodSubscribe is the relayed resources/subscribe.
const MethodSubscribe = "resources/subscribe"

// Subscriber names the receiver of a subscription's notifications: the
// caller's identity (RequestHeader.Caller) when the request names it; for
// a request of an ingress that names none, the gateway key and the
// fingerprint of the user credential (as Owner, a subject token).
func Subscriber(keyID, tokenFP string) string { return Owner(keyID, tokenFP) }

// ServerNotification is a notification of server for one subscriber:
// Method and Params as the upstream sent them.
type ServerNotification struct {
	Type   string          `json:"type"`
	Server string          `json:"server"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params,omitempty"`
}

// Unsubscribe ends subscriber's subscription to the resource URI of Server.
type Unsubscribe struct {
	Type       string `json:"type"`
	Server     string `json:"server"`
	Subscriber string `json:"subscriber"`
	URI        string `json:"uri"`
}

// maxURILen bounds a resource URI in an Unsubscribe.
const maxURILen = 4096

// DecodeUnsubscribe decodes and validates an Unsubscribe.
func DecodeUnsubscribe(data []byte) (*Unsubscribe, error) { return decodeValid[Unsubscribe](data) }

// Validate checks an Unsubscribe's fields.
func (u *Unsubscribe) Validate() error {
	if err := checkAddressed(u.Type, TypeUnsubscribe, u.Server); err != nil {
		return err
	}
	switch {
	case !validToken(u.Subscriber):
		return badMessage("invalid subscriber")
	case u.URI == "" || len(u.URI) > maxURILen:
		return badMessage("uri must be 1 to %d bytes", maxURILen)
	}
	return nil
}

// DecodeServerNotification decodes and validates a ServerNotification.
func DecodeServerNotification(data []byte) (*ServerNotification, error) {
	return decodeValid[ServerNotification](data)
}

// Validate checks a ServerNotification's fields.
func (n *ServerNotification) Validate() error {
	if err := checkAddressed(n.Type, TypeServerNotification, n.Server); err != nil {
		return err
	}
	switch {
	case n.Method != "notifications/resources/updated":
		return badMessage("notification %q is not relayed", n.Method)
	case len(n.Params) > 0 && !isJSONObject(n.Params):
		return badMessage("params must be a JSON object")
	}
	return nil
}

// checkAddressed checks the type of a message of a server's and the
// server's name.
func checkAddressed(typ, want, server string) error {
	if err := checkType(typ, want); err != nil {
		return err
	}
	if !ServerNameAllowed(server) {
		return badMessage("invalid server name")
	}
	return nil
}
