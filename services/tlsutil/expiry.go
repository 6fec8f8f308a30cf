package tlsutil

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// CertExpiry is the earliest NotAfter in one PEM file of the pki dir.
type CertExpiry struct {
	Name     string // file name without .pem ("gateway", "ca")
	NotAfter time.Time
	Err      error
}

// Expiries reads the public certificates in dir (never the keys).
func Expiries(dir string) []CertExpiry {
	matches, _ := filepath.Glob(filepath.Join(dir, "*.pem"))
	sort.Strings(matches)
	var out []CertExpiry
	for _, m := range matches {
		base := filepath.Base(m)
		if strings.HasSuffix(base, "-key.pem") || base == "ca-cert.pem" {
			continue
		}
		ce := CertExpiry{Name: strings.TrimSuffix(base, ".pem")}
		b, err := os.ReadFile(m)
		if err != nil {
			ce.Err = err
			out = append(out, ce)
			continue
		}
		for rest := b; ; {
			var blk *pem.Block
			blk, rest = pem.Decode(rest)
			if blk == nil {
				break
			}
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				ce.Err = err
				break
			}
			if ce.NotAfter.IsZero() || c.NotAfter.Before(ce.NotAfter) {
				ce.NotAfter = c.NotAfter
			}
		}
		if ce.NotAfter.IsZero() && ce.Err == nil {
			ce.Err = errors.New("no certificate in file")
		}
		out = append(out, ce)
	}
	return out
}
