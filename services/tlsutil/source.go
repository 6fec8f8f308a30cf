package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"
)

// recheck bounds how often a Source stats its files: cheap enough for every
// handshake, quick enough that a rotation is seen within a second.
const recheck = time.Second

// Source holds one identity's certificate, key and CA bundle and re-reads
// them when their files change. A change that does not parse (a half-done
// rotation) keeps the previous good material.
type Source struct {
	files Files
	now   func() time.Time

	mu        sync.Mutex
	cert      *tls.Certificate
	pool      *x509.CertPool
	stamp     [3]time.Time
	lastCheck time.Time
}

// NewSource loads f. Errors name the file and the fix.
func NewSource(f Files) (*Source, error) {
	s := &Source{files: f, now: time.Now}
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

// Files returns the files this source reads.
func (s *Source) Files() Files { return s.files }

func (s *Source) load() error {
	stamp, err := s.stat()
	if err != nil {
		return err
	}
	certPEM, err := os.ReadFile(s.files.Cert)
	if err != nil {
		return fileErr(s.files.Cert, err)
	}
	keyPEM, err := os.ReadFile(s.files.Key)
	if err != nil {
		return fileErr(s.files.Key, err)
	}
	caPEM, err := os.ReadFile(s.files.CA)
	if err != nil {
		return fileErr(s.files.CA, err)
	}
	pair, err := parsePair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("certificate %s with key %s: %w", s.files.Cert, s.files.Key, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("CA bundle %s: %w", s.files.CA, errNoCert)
	}
	s.cert, s.pool, s.stamp = &pair, pool, stamp
	return nil
}

func (s *Source) stat() ([3]time.Time, error) {
	var st [3]time.Time
	for i, p := range []string{s.files.Cert, s.files.Key, s.files.CA} {
		fi, err := os.Stat(p)
		if err != nil {
			return st, fileErr(p, err)
		}
		st[i] = fi.ModTime()
	}
	return st, nil
}

func fileErr(path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s is missing: run `moltbot certs init` to create the internal CA and certificates", path)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%s is not readable by uid %d: fix its owner or mode (`moltbot doctor --fix`)", path, os.Getuid())
	default:
		return fmt.Errorf("read %s: %w", path, err)
	}
}

// current returns the material, reloading it when a file changed.
func (s *Source) current() (*tls.Certificate, *x509.CertPool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if now.Sub(s.lastCheck) >= recheck {
		s.lastCheck = now
		if st, err := s.stat(); err == nil && st != s.stamp {
			_ = s.load() // on failure the old material stays in use
		}
	}
	return s.cert, s.pool
}

// Leaf returns the current leaf certificate (for expiry reports).
func (s *Source) Leaf() *x509.Certificate {
	c, _ := s.current()
	return c.Leaf
}

// ServerConfig returns a TLS 1.3 server config. clientAuth is
// tls.RequireAndVerifyClientCert on internal ports and
// tls.VerifyClientCertIfGiven on the gateway's client port.
func (s *Source) ServerConfig(clientAuth tls.ClientAuthType) *tls.Config {
	base := &tls.Config{MinVersion: tls.VersionTLS13, NextProtos: []string{"h2"}}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		cert, pool := s.current()
		return &tls.Config{
			MinVersion:   tls.VersionTLS13,
			Certificates: []tls.Certificate{*cert},
			ClientCAs:    pool,
			ClientAuth:   clientAuth,
			NextProtos:   []string{"h2"},
		}, nil
	}
	return base
}

// ClientConfig returns a TLS 1.3 client config that presents this identity's
// certificate and verifies the server against the current CA bundle and
// serverName. Verification is done in VerifyConnection so a rotated bundle
// is used without rebuilding the connection's config.
func (s *Source) ClientConfig(serverName string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		ServerName: serverName,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			cert, _ := s.current()
			return cert, nil
		},
		// Standard verification is replaced, not skipped: VerifyConnection
		// checks the chain and the name against the reloadable bundle.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, pool := s.current()
			return VerifyServer(cs, pool, serverName)
		},
	}
}

// VerifyServer checks a server's chain against pool and its name.
func VerifyServer(cs tls.ConnectionState, pool *x509.CertPool, serverName string) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("server presented no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		Roots:         pool,
		Intermediates: inter,
		DNSName:       serverName,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return fmt.Errorf("verify server certificate for %q: %w", serverName, err)
	}
	return nil
}

// CAOnlyClientConfig is for clients without a certificate of their own
// (apps talking to the gateway's client port): verify the server only.
func CAOnlyClientConfig(caFile, serverName string) (*tls.Config, error) {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fileErr(caFile, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("CA bundle %s: %w", caFile, errNoCert)
	}
	return &tls.Config{MinVersion: tls.VersionTLS13, ServerName: serverName, RootCAs: pool}, nil
}

func parsePair(certPEM, keyPEM []byte) (tls.Certificate, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return pair, err
	}
	if pair.Leaf == nil {
		leaf, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			return pair, err
		}
		pair.Leaf = leaf
	}
	return pair, nil
}

// PeerIdentity returns the CommonName of a verified peer leaf, or "".
// Only verified chains count: PeerCertificates alone proves nothing.
func PeerIdentity(cs tls.ConnectionState) string {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return ""
	}
	return cs.VerifiedChains[0][0].Subject.CommonName
}
