// Package tlsutil is the internal PKI and TLS plumbing shared by every
// binary: an ECDSA CA, leaf certificates per identity, TLS 1.3 configs for
// servers and clients, and certificate sources that re-read their files
// when they change so rotation needs no restart.
package tlsutil

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/moltbot/moltbot-secure/services/atomicfile"
)

// Validity periods. Leaves are short enough that rotation is routine.
const (
	CAValidity   = 10 * 365 * 24 * time.Hour
	LeafValidity = 365 * 24 * time.Hour
)

// BundleSettle is how long Rotate waits between publishing a new CA bundle
// and issuing leaves under the new CA.
const BundleSettle = 2 * recheck

// Files names the PEM files of one identity.
type Files struct {
	CA   string // CA bundle (one or more CA certs) used to verify peers
	Cert string
	Key  string
}

// FilesFor returns the file names of identity id under pkiDir.
func FilesFor(pkiDir, id string) Files {
	return Files{
		CA:   filepath.Join(pkiDir, "ca.pem"),
		Cert: filepath.Join(pkiDir, id+".pem"),
		Key:  filepath.Join(pkiDir, id+"-key.pem"),
	}
}

// CAKeyFile and CACertFile are the CA's own files in pkiDir.
func CAKeyFile(pkiDir string) string  { return filepath.Join(pkiDir, "ca-key.pem") }
func CACertFile(pkiDir string) string { return filepath.Join(pkiDir, "ca-cert.pem") }

// LeafSpec describes one leaf certificate to issue.
type LeafSpec struct {
	ID    string   // identity, written as the CommonName
	DNS   []string // DNS SANs
	IPs   []net.IP // IP SANs
	Owner *Owner   // optional chown of the key file (compose: each service its own uid)
}

// Owner is a uid:gid for chown and the mode the file gets (0400 when zero).
type Owner struct {
	UID, GID int
	Mode     os.FileMode
}

// FileMode is the mode an owned file gets.
func (o Owner) FileMode() os.FileMode {
	if o.Mode == 0 {
		return 0o400
	}
	return o.Mode
}

// Result reports what Init or Rotate wrote.
type Result struct {
	Created []string
	Kept    []string
}

// Init creates the CA (when missing) and the leaf certs (when missing) in
// pkiDir. Existing keys are never overwritten unless force is set: an
// overwritten CA key would orphan every issued cert.
func Init(pkiDir string, leaves []LeafSpec, force bool, now time.Time) (Result, error) {
	var res Result
	if err := os.MkdirAll(pkiDir, 0o700); err != nil {
		return res, fmt.Errorf("create pki dir %s: %w", pkiDir, err)
	}
	caCert, caKey, created, err := ensureCA(pkiDir, force, now)
	if err != nil {
		return res, err
	}
	if created {
		res.Created = append(res.Created, CACertFile(pkiDir))
		force = true // leaves of an old CA are useless now
	} else {
		res.Kept = append(res.Kept, CACertFile(pkiDir))
	}
	for _, l := range leaves {
		f := FilesFor(pkiDir, l.ID)
		if !force && exists(f.Cert) && exists(f.Key) {
			res.Kept = append(res.Kept, f.Cert)
			if err := chownKey(f.Key, l.Owner); err != nil {
				return res, err
			}
			continue
		}
		if err := issueLeaf(pkiDir, l, caCert, caKey, now); err != nil {
			return res, err
		}
		res.Created = append(res.Created, f.Cert)
	}
	return res, nil
}

// Rotate reissues the given leaves under the current CA. With newCA, a new CA
// is made first and the bundle in ca.pem carries both the new and the old CA
// certificate, so peers still holding old leaves verify during the overlap.
func Rotate(pkiDir string, leaves []LeafSpec, newCA bool, now time.Time) (Result, error) {
	var res Result
	caCert, caKey, err := loadCA(pkiDir)
	if err != nil {
		return res, err
	}
	if newCA {
		old := caCert
		caCert, caKey, err = writeCA(pkiDir, now)
		if err != nil {
			return res, err
		}
		if err := writeBundle(pkiDir, caCert, old); err != nil {
			return res, err
		}
		res.Created = append(res.Created, CACertFile(pkiDir))
		// Every peer must trust the new CA before anyone presents a leaf it
		// signed: sources re-read files at most once per `recheck`, so wait
		// out that window before issuing (measured: calls failed with
		// "unknown certificate authority" for ~1 s without it).
		time.Sleep(BundleSettle)
	}
	for _, l := range leaves {
		if err := issueLeaf(pkiDir, l, caCert, caKey, now); err != nil {
			return res, err
		}
		res.Created = append(res.Created, FilesFor(pkiDir, l.ID).Cert)
	}
	return res, nil
}

func ensureCA(pkiDir string, force bool, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, bool, error) {
	if !force && exists(CAKeyFile(pkiDir)) && exists(CACertFile(pkiDir)) {
		c, k, err := loadCA(pkiDir)
		return c, k, false, err
	}
	c, k, err := writeCA(pkiDir, now)
	if err != nil {
		return nil, nil, false, err
	}
	if err := writeBundle(pkiDir, c); err != nil {
		return nil, nil, false, err
	}
	return c, k, true, nil
}

func writeCA(pkiDir string, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "moltbot internal CA " + now.UTC().Format("2006-01-02T15:04:05Z")},
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create CA cert: %w", err)
	}
	cert, _ := x509.ParseCertificate(der)
	if err := writeKey(CAKeyFile(pkiDir), key, nil); err != nil {
		return nil, nil, err
	}
	if err := atomicfile.WriteFile(CACertFile(pkiDir), pemBlock("CERTIFICATE", der), 0o644); err != nil {
		return nil, nil, fmt.Errorf("write %s: %w", CACertFile(pkiDir), err)
	}
	return cert, key, nil
}

// writeBundle writes ca.pem, the trust bundle every peer verifies against.
func writeBundle(pkiDir string, cas ...*x509.Certificate) error {
	var b bytes.Buffer
	for _, c := range cas {
		b.Write(pemBlock("CERTIFICATE", c.Raw))
	}
	p := filepath.Join(pkiDir, "ca.pem")
	if err := atomicfile.WriteFile(p, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

func loadCA(pkiDir string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certPEM, err := os.ReadFile(CACertFile(pkiDir))
	if err != nil {
		return nil, nil, fmt.Errorf("read CA cert: %w (run `moltbot certs init`)", err)
	}
	keyPEM, err := os.ReadFile(CAKeyFile(pkiDir))
	if err != nil {
		return nil, nil, fmt.Errorf("read CA key: %w (run `moltbot certs init`)", err)
	}
	pair, err := parsePair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("CA in %s: %w", pkiDir, err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, fmt.Errorf("CA key in %s: not an ECDSA key", pkiDir)
	}
	return pair.Leaf, key, nil
}

func issueLeaf(pkiDir string, l LeafSpec, ca *x509.Certificate, caKey *ecdsa.PrivateKey, now time.Time) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate key for %s: %w", l.ID, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: l.ID},
		NotBefore:    now.Add(-5 * time.Minute),
		NotAfter:     now.Add(LeafValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     append([]string{l.ID}, l.DNS...),
		IPAddresses:  l.IPs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("issue cert for %s: %w", l.ID, err)
	}
	f := FilesFor(pkiDir, l.ID)
	// Key first: a reader that sees the new cert must find the matching key.
	// The source reloads only when both parse as a pair, so order is safe.
	if err := writeKey(f.Key, key, l.Owner); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(f.Cert, pemBlock("CERTIFICATE", der), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", f.Cert, err)
	}
	return nil
}

func writeKey(path string, key *ecdsa.PrivateKey, owner *Owner) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode key %s: %w", path, err)
	}
	mode := os.FileMode(0o600)
	if owner != nil {
		mode = 0o400
	}
	if err := atomicfile.WriteFile(path, pemBlock("PRIVATE KEY", der), mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return chownKey(path, owner)
}

func chownKey(path string, owner *Owner) error {
	if owner == nil {
		return nil
	}
	if err := os.Lchown(path, owner.UID, owner.GID); err != nil {
		return fmt.Errorf("chown %s to %d:%d: %w", path, owner.UID, owner.GID, err)
	}
	if err := os.Chmod(path, 0o400); err != nil {
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	return nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		// crypto/rand never fails on supported platforms (Go 1.24+ panics itself).
		return big.NewInt(time.Now().UnixNano())
	}
	return n
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

var errNoCert = errors.New("no certificate in PEM data")
