package dispatch

import (
	"encoding/json"
	"errors"

	"github.com/nats-io/nats.go"

	"github.com/toolbus/toolbus/contracts"
)

// eventBuffer bounds the events of one call waiting to be read; more are
// dropped (progress and logs are best effort).
const eventBuffer = 256

// eventsToken starts the subject token of a call's events below the
// dispatcher's inbox: <inbox>.ev.<request id>.
const eventsToken = "ev."

// Events is the subscription to one call's progress and log events (see
// Call.EventsTo). It lives as long as the call's HTTP request: open it
// before the call, close it after.
type Events struct {
	// Subject is where the worker publishes: put it in Call.EventsTo.
	Subject   string
	requestID string
	d         *Dispatcher
	ch        chan *nats.Msg
}

// OpenEvents registers for the events of the call requestID, on a subject
// below the dispatcher's own inbox, which its one inbox subscription
// already covers: no subscription per call. Register before the call is
// published, so no event is missed. A request id has one registration at a
// time.
func (d *Dispatcher) OpenEvents(requestID string) (*Events, error) {
	e := &Events{Subject: d.inbox + "." + eventsToken + requestID, requestID: requestID, d: d, ch: make(chan *nats.Msg, eventBuffer)}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, taken := d.events[requestID]; taken {
		return nil, errors.New("dispatch: events of this request are already open")
	}
	d.events[requestID] = e.ch
	return e, nil
}

// C delivers the raw event messages; decode each with Decode.
func (e *Events) C() <-chan *nats.Msg { return e.ch }

// Decode returns the call's event in m, or nil for anything else.
func (e *Events) Decode(m *nats.Msg) *contracts.CallEvent {
	var ev contracts.CallEvent
	if json.Unmarshal(m.Data, &ev) != nil || ev.Type != contracts.TypeCallEvent || ev.RequestID != e.requestID {
		return nil
	}
	if ev.Progress == nil && len(ev.Log) == 0 && ev.Request == nil {
		return nil
	}
	if r := ev.Request; r != nil && (!contracts.ValidClientRequestID(r.ID) || !contracts.ClientRequestAllowed(r.Method)) {
		return nil
	}
	return &ev
}

// Pending returns the events already received and not yet read, without
// waiting. Call it after the call's reply has arrived: the worker publishes
// its events before its reply, and the dispatcher's inbox callback queues
// them here before it hands over the reply, so none is left behind.
func (e *Events) Pending() []*contracts.CallEvent {
	var out []*contracts.CallEvent
	for {
		select {
		case m := <-e.ch:
			if ev := e.Decode(m); ev != nil {
				out = append(out, ev)
			}
		default:
			return out
		}
	}
}

// Close ends the registration; later events of the call are dropped.
func (e *Events) Close() {
	e.d.mu.Lock()
	if e.d.events[e.requestID] == e.ch {
		delete(e.d.events, e.requestID)
	}
	e.d.mu.Unlock()
}

// CancelCall announces the cancellation of the synchronous call requestID
// on contracts.CancelSubject: the worker running it cancels its upstream
// call. Best effort, like every cancellation.
func (d *Dispatcher) CancelCall(requestID string) error {
	return d.nc.Publish(contracts.CancelSubject(requestID), nil)
}

// Answer sends a client's answer to a request the upstream made during a
// call (contracts.ClientAnswer, from a CallEvent's Request) to the worker
// waiting for it, on whichever replica the call runs.
func (d *Dispatcher) Answer(a *contracts.ClientAnswer) error {
	a.Type = contracts.TypeClientAnswer
	data, err := json.Marshal(a)
	if err != nil {
		return err
	}
	return d.nc.Publish(contracts.AnswerSubject(a.RequestID, a.ID), data)
}

// Notifications is the subscription to one caller's notifications from one
// server (contracts.NotifySubject): the resource updates of its
// subscriptions, made through any replica and held by any worker. It lives
// as long as the caller's standalone stream.
type Notifications struct {
	sub *nats.Subscription
	ch  chan *nats.Msg
}

// Notifications subscribes to server's notifications for subscriber
// (contracts.Subscriber). Updates beyond a buffer of eventBuffer waiting to
// be read are dropped, as events are.
func (d *Dispatcher) Notifications(server, subscriber string) (*Notifications, error) {
	n := &Notifications{ch: make(chan *nats.Msg, eventBuffer)}
	sub, err := d.nc.ChanSubscribe(contracts.NotifySubject(server, subscriber), n.ch)
	if err != nil {
		return nil, err
	}
	n.sub = sub
	return n, nil
}

// C delivers the raw messages; decode each with
// contracts.DecodeServerNotification.
func (n *Notifications) C() <-chan *nats.Msg { return n.ch }

// Close ends the subscription.
func (n *Notifications) Close() { _ = n.sub.Unsubscribe() }

// Unsubscribe announces the end of subscriber's subscription to the
// resource uri of server to every worker of the server: the one holding it
// ends it. Best effort, like a cancellation.
func (d *Dispatcher) Unsubscribe(server, subscriber, uri string) error {
	data, err := json.Marshal(contracts.Unsubscribe{
		Type: contracts.TypeUnsubscribe, Server: server, Subscriber: subscriber, URI: uri,
	})
	if err != nil {
		return err
	}
	return d.nc.Publish(contracts.UnsubscribeSubject(server), data)
}
