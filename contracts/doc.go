// Package contracts is the wire contract between the toolbus ingress and its
// workers: subject names, versioned messages, error codes and the sealed user
// token. It is the only package both sides import, and it depends on the
// standard library alone.
//
// # Versioning
//
// Every message carries an explicit "type" string such as
// "toolbus.call.request.v2". A message version only ever gains optional
// fields; a change that an old reader could misread gets a new type. Golden
// files in testdata/ pin the encoding of every message (compared as JSON
// values: members and values, not their order; a v2 message's body byte for
// byte), so an accidental rename or type change fails the tests.
//
// # Wire format v2
//
// The synchronous kinds (call, list, rpc: requests and replies) are v2
// (wire.go): their small fields travel as one line of JSON in the NATS
// header HeaderRequest or HeaderReply, and their payload - arguments,
// params, result, tools - is the message body, byte for byte, never
// re-encoded or re-scanned on the bus. Everything else (jobs, events,
// answers, notifications) is one JSON message in the body (v1).
//
// # Headers
//
// Every request message embeds one RequestHeader (type, request id, server,
// gateway key id, budget, expiry, sealed token, fingerprint), validated once
// by its Validate; every reply embeds one ReplyHeader (type, request id,
// error). EncodeRequest / DecodeRequest and EncodeReply / DecodeReply
// encode, decode and validate any of them.
//
// # Names
//
// Every subject, queue group, stream, consumer and bucket name is built by a
// function in subjects.go, and ParseSubject is the one parser of the
// subjects requests arrive on. No other file concatenates subject strings.
//
// # Secrets
//
// The end user's credential crosses NATS only inside a [Sealed] field, which
// only a worker holding the matching private key can open, and only for the
// request, server, tool, gateway key, reply subject and time window it was
// sealed for. See seal.go.
package contracts
