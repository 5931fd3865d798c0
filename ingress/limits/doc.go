// Package limits gives every gateway key its fair share of the gateway:
// bounds on its API requests in flight, on its synchronous calls in flight
// to any one server, on its long-lived requests (MCP GET streams, long
// polls), and on its request rate. Over a bound a request is answered 429
// rate_limited with Retry-After, at once. The same bounds apply, where
// configured, to each caller identity within its key (a key's end user:
// the key and the credentials it presented), so that one user of a shared
// key cannot take the whole key's share; the state kept per identity is
// bounded (identities.go).
//
// The bounds hold across ingress replicas without a NATS round trip on the
// hot path: every replica announces itself on contracts.IngressPresenceSubject
// at intervals (Presence), counts the replicas it has heard from recently,
// and enforces its share of each bound - the bound divided by the live
// replicas, at least 1 - with local counters. The shares add up to the
// bound while the replicas agree on their number and the key's traffic is
// spread over them (a load balancer's round robin); docs/security.md says
// what the design does not guarantee.
package limits
