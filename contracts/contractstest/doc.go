// Package contractstest holds test helpers for code that talks over NATS:
// an embedded nats-server with JetStream on a random loopback port and a
// temporary store (StartNATS), and a recorder of every message on a subject
// (RecordAll) for asserting what crossed the bus, in particular that a
// secret never did; a started binary with its output captured
// (StartProcess) for the process tests; the pieces every test kit needs: a
// log buffer (LogBuffer), a bounded context (Ctx), a bounded poll
// (Eventually) and a bounded wait for a goroutine's result (WaitReturn).
//
// Everything is torn down with t.Cleanup; helpers fail the test through t
// instead of returning errors. Only tests should import this package.
package contractstest
