package certs

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/moltbot/moltbot-secure/services/tlsutil"
)

// probeTimeout bounds the look for a running gateway: init must stay quick
// when nothing answers (compose's init service has no network at all).
const probeTimeout = 2 * time.Second

// makesNewCA reports whether Init on pki would create a CA (it keeps one
// only when both the certificate and the key are there).
func makesNewCA(pki string, force bool) bool {
	return force || !exists(tlsutil.CACertFile(pki)) || !exists(tlsutil.CAKeyFile(pki))
}

// checkNoOtherStack refuses to make a second CA while a gateway answers at
// addr with a certificate pki's current CA did not sign: that stack would
// trust none of what init makes, and the user wants its bundle instead
// (the issue: a forgotten MOLTBOT_STATE_DIR led to `certs init`, a second
// CA, then "certificate signed by unknown authority").
func checkNoOtherStack(addr, pki, bundle string) error {
	d := &net.Dialer{Timeout: probeTimeout}
	// Only the certificate is wanted here, not trust: it is checked below.
	conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) //nolint:gosec // inspected, not trusted
	if err != nil {
		return nil // nothing (or nothing TLS) answers: no stack to collide with
	}
	defer conn.Close()
	certs := conn.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil
	}
	if signedBy(certs, tlsutil.FilesFor(pki, "").CA) {
		return nil // this PKI's own stack: --force re-keys it on purpose
	}
	use := "DIR"
	if bundle != "" {
		use = bundle
	}
	return fmt.Errorf("a stack with another CA is running at %s: `certs init` here (%s) would make a second CA it does not trust; "+
		"use the running stack's bundle instead: --state-dir %s (make up writes it to ./.moltbot in the checkout and names it in ~/.moltbot/stack.json); "+
		"stop that stack first to really start over", addr, pki, use)
}

func signedBy(chain []*x509.Certificate, caFile string) bool {
	b, err := os.ReadFile(caFile)
	if err != nil {
		return false
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(b) {
		return false
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err = chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err == nil
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }
