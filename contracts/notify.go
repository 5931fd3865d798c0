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
// gateway key and the fingerprint of the user credential the subscription
// was made with (as Owner, a subject token).
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
func DecodeUnsubscribe(data []byte) (*Unsubscribe, error) {
	var u Unsubscribe
	if err := decode(data, &u); err != nil {
		return nil, err
	}
	switch {
	case u.Type != TypeUnsubscribe:
		return nil, badMessage("type %q, want %q", u.Type, TypeUnsubscribe)
	case !ValidServerName(u.Server):
		return nil, badMessage("invalid server name")
	case !validToken(u.Subscriber):
		return nil, badMessage("invalid subscriber")
	case u.URI == "" || len(u.URI) > maxURILen:
		return nil, badMessage("uri must be 1 to %d bytes", maxURILen)
	}
	return &u, nil
}

// DecodeServerNotification decodes and validates a ServerNotification.
func DecodeServerNotification(data []byte) (*ServerNotification, error) {
	var n ServerNotification
	if err := decode(data, &n); err != nil {
		return nil, err
	}
	switch {
	case n.Type != TypeServerNotification:
		return nil, badMessage("type %q, want %q", n.Type, TypeServerNotification)
	case !ValidServerName(n.Server):
		return nil, badMessage("invalid server name")
	case n.Method != "notifications/resources/updated":
		return nil, badMessage("notification %q is not relayed", n.Method)
	case len(n.Params) > 0 && !isJSONObject(n.Params):
		return nil, badMessage("params must be a JSON object")
	}
	return &n, nil
}
