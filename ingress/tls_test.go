package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts/config"
)

// testPKI writes a CA, a server certificate for 127.0.0.1 and a client
// certificate into dir.
func testPKI(t *testing.T, dir string) (ca, serverCert, serverKey, clientCert, clientKey string) {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	caKey := newKey()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "toolbus test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	issue := func(name string, usage x509.ExtKeyUsage, serial int64) (string, string) {
		k := newKey()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature,
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, _ := x509.MarshalECPrivateKey(k)
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", keyDER)
	}
	ca = write("ca.pem", "CERTIFICATE", caDER)
	serverCert, serverKey = issue("server", x509.ExtKeyUsageServerAuth, 2)
	clientCert, clientKey = issue("client", x509.ExtKeyUsageClientAuth, 3)
	return
}

// Both binaries connect to NATS with the same config: the CA to trust and a
// client certificate for a server that verifies clients.
func TestConnectNATS_MutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, serverCert, serverKey, clientCert, clientKey := testPKI(t, dir)
	tlsConfig, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: serverCert, KeyFile: serverKey, CaFile: ca, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, TLSConfig: tlsConfig, TLSVerify: true, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	url := strings.Replace(ns.ClientURL(), "nats://", "tls://", 1)

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
