package main

import (
	"crypto/tls"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
)

// Both binaries connect to NATS with the same config: the CA to trust and a
// client certificate for a server that verifies clients.
func TestConnectNATS_MutualTLS(t *testing.T) {
	p := contractstest.WritePKI(t, t.TempDir())
	url := contractstest.StartTLSNATS(t, p)
	ca, clientCert, clientKey := p.CA, p.ClientCert, p.ClientKey

	good := config.NATS{URL: url, TLS: config.NATSTLS{CAFile: ca, CertFile: clientCert, KeyFile: clientKey}}
	nc, err := connectNATS(good, zerolog.Nop())
	if err != nil {
		t.Fatalf("with CA and client certificate: %v", err)
	}
	if !nc.IsConnected() || !nc.TLSRequired() {
		t.Fatalf("not connected over TLS")
	}
	state, err := nc.TLSConnectionState()
	if err != nil || state.Version < tls.VersionTLS12 || len(state.PeerCertificates) == 0 {
		t.Fatalf("TLS state %v %v", state.Version, err)
	}
	nc.Close()

	// Without a client certificate the server refuses the connection.
	noClient := config.NATS{URL: url, TLS: config.NATSTLS{CAFile: ca}}
	if nc, err := connectNoRetry(noClient); err == nil {
		nc.Close()
		t.Fatal("connected without a client certificate")
	}
	// Without the CA the client refuses the server.
	if nc, err := connectNoRetry(config.NATS{URL: url, TLS: config.NATSTLS{CertFile: clientCert, KeyFile: clientKey}}); err == nil {
		nc.Close()
		t.Fatal("trusted a server signed by an unknown CA")
	}
}

// connectNoRetry connects with the ingress's options but fails at once.
func connectNoRetry(c config.NATS) (*nats.Conn, error) {
	opts, err := natsOptions(c, zerolog.Nop())
	if err != nil {
		return nil, err
	}
	return nats.Connect(c.URL, append(opts, nats.RetryOnFailedConnect(false), nats.Timeout(2*time.Second))...)
}
