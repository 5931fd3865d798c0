// Package natsconn is how both toolbus binaries reach NATS: one set of
// connection options built from the shared configuration's nats section
// (URL, name, TLS, credentials file), reconnecting forever, with handlers
// that log connects, disconnects, reconnects and asynchronous errors; and a
// bounded Drain for shutdown.
//
// It lives under contracts/, beside the wire contract, because the ingress,
// the worker and the in-process dev mode all use it; it imports nothing of
// either side but the shared configuration.
//
// Nothing here logs a secret: URLs are logged and reported redacted (a
// password in a NATS URL never appears), and a credentials file is named,
// never read into a message.
package natsconn
