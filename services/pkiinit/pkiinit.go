// Package pkiinit creates what the stack needs to trust itself: the
// internal CA, a leaf per identity, a service token per identity, the
// digests file every service verifies tokens against, and the bootstrap
// gateway client token. It never overwrites existing keys unless forced.
package pkiinit

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moltbot/moltbot-secure/services/atomicfile"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/tlsutil"
)

// GatewayTokenFile is the bootstrap gateway client token.
const GatewayTokenFile = "gateway-auth.token"

// Options for Init.
type Options struct {
	PKIDir string
	Force  bool
	// Owners maps identity -> uid:gid; its key and token are chowned to it
	// with mode 0400 (compose: each service reads only its own material).
	Owners map[string]tlsutil.Owner
	// ExtraDNS adds DNS SANs to the gateway's cert.
	ExtraDNS []string
	Now      time.Time
}

// Identities that get a leaf and a token.
func Identities() []string { return append(auth.Services(), auth.IDCLI) }

// Init creates the material and returns the files created and kept.
func Init(o Options) (tlsutil.Result, error) {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	var leaves []tlsutil.LeafSpec
	for _, id := range Identities() {
		l := leafSpec(id, o.ExtraDNS)
		if ow, ok := o.Owners[id]; ok {
			l.Owner = &ow
		}
		leaves = append(leaves, l)
	}
	res, err := tlsutil.Init(o.PKIDir, leaves, o.Force, o.Now)
	if err != nil {
		return res, err
	}
	digests := map[string]string{}
	for _, id := range Identities() {
		p := filepath.Join(o.PKIDir, id+".token")
		tok, created, err := ensureToken(p, o.Force, owner(o.Owners, id))
		if err != nil {
			return res, err
		}
		record(&res, p, created)
		d := auth.DigestOf(tok)
		digests[id] = hex.EncodeToString(d[:])
	}
	b, _ := json.MarshalIndent(digests, "", "  ")
	dp := filepath.Join(o.PKIDir, auth.TokenDigestsFile)
	if err := atomicfile.WriteFile(dp, append(b, '\n'), 0o644); err != nil {
		return res, fmt.Errorf("write %s: %w", dp, err)
	}
	gp := filepath.Join(o.PKIDir, GatewayTokenFile)
	// The bootstrap client token is read by the gateway and by the CLI:
	// owned by the gateway's uid and the CLI's gid, mode 0440.
	gow := owner(o.Owners, auth.IDGateway)
	if cow := owner(o.Owners, auth.IDCLI); gow != nil && cow != nil {
		gow = &tlsutil.Owner{UID: gow.UID, GID: cow.GID, Mode: 0o440}
	}
	_, created, err := ensureToken(gp, o.Force, gow)
	if err != nil {
		return res, err
	}
	record(&res, gp, created)
	return res, nil
}

// leafSpec is the certificate an identity gets: its name, plus loopback so
// a single-host install and health checks can dial 127.0.0.1. The gateway
// always carries its compose DNS name.
func leafSpec(id string, extraDNS []string) tlsutil.LeafSpec {
	l := tlsutil.LeafSpec{ID: id, DNS: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}}
	if id == auth.IDGateway {
		l.DNS = append(l.DNS, extraDNS...)
	}
	return l
}

func owner(m map[string]tlsutil.Owner, id string) *tlsutil.Owner {
	if ow, ok := m[id]; ok {
		return &ow
	}
	return nil
}

func record(res *tlsutil.Result, p string, created bool) {
	if created {
		res.Created = append(res.Created, p)
	} else {
		res.Kept = append(res.Kept, p)
	}
}

// ensureToken keeps an existing valid token, else writes a new one.
func ensureToken(p string, force bool, ow *tlsutil.Owner) (string, bool, error) {
	if !force {
		if b, err := os.ReadFile(p); err == nil {
			tok := strings.TrimSpace(string(b))
			if auth.CheckToken(tok) == nil {
				return tok, false, chown(p, ow)
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", false, fmt.Errorf("read %s: %w", p, err)
		}
	}
	tok, err := auth.GenerateToken(rand.Reader)
	if err != nil {
		return "", false, err
	}
	mode := os.FileMode(0o600)
	if ow != nil {
		mode = ow.FileMode()
	}
	if err := atomicfile.WriteFile(p, []byte(tok+"\n"), mode); err != nil {
		return "", false, fmt.Errorf("write %s: %w", p, err)
	}
	return tok, true, chown(p, ow)
}

func chown(p string, ow *tlsutil.Owner) error {
	if ow == nil {
		return nil
	}
	if err := os.Lchown(p, ow.UID, ow.GID); err != nil {
		return fmt.Errorf("chown %s: %w", p, err)
	}
	return os.Chmod(p, ow.FileMode())
}

// ParseOwners parses "id=uid:gid,id=uid:gid".
func ParseOwners(specs []string) (map[string]tlsutil.Owner, error) {
	out := map[string]tlsutil.Owner{}
	known := map[string]bool{}
	for _, id := range Identities() {
		known[id] = true
	}
	for _, s := range specs {
		id, ug, ok := strings.Cut(s, "=")
		if !ok || !known[id] {
			ids := Identities()
			sort.Strings(ids)
			return nil, fmt.Errorf("--owner %q: want id=uid:gid with id one of %s", s, strings.Join(ids, ", "))
		}
		ow, err := ParseUIDGID(ug)
		if err != nil {
			return nil, fmt.Errorf("--owner %q: %w", s, err)
		}
		out[id] = ow
	}
	return out, nil
}

// ParseUIDGID parses "uid:gid" (both numeric; a bare uid would run with gid 0).
func ParseUIDGID(s string) (tlsutil.Owner, error) {
	u, g, ok := strings.Cut(s, ":")
	uid, err1 := strconv.Atoi(u)
	gid, err2 := strconv.Atoi(g)
	if !ok || err1 != nil || err2 != nil || uid < 0 || gid < 0 {
		return tlsutil.Owner{}, fmt.Errorf("%q is not uid:gid (numbers, e.g. 65101:65101)", s)
	}
	return tlsutil.Owner{UID: uid, GID: gid}, nil
}

// Export copies the CLI's client bundle (CA, cli cert and key, gateway
// token) into dir/pki so a host CLI can drive a containerised stack.
func Export(pkiDir, dir string, ow *tlsutil.Owner) error {
	dst := filepath.Join(dir, "pki")
	for _, d := range []string{dir, dst} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return err
		}
		if err := chownPlain(d, ow); err != nil {
			return err
		}
	}
	for _, name := range []string{"ca.pem", auth.IDCLI + ".pem", auth.IDCLI + "-key.pem", auth.IDCLI + ".token", GatewayTokenFile} {
		b, err := os.ReadFile(filepath.Join(pkiDir, name))
		if err != nil {
			return fmt.Errorf("export %s: %w", name, err)
		}
		p := filepath.Join(dst, name)
		if err := atomicfile.WriteFile(p, b, 0o600); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
		if err := chownPlain(p, ow); err != nil {
			return err
		}
	}
	return nil
}

func chownPlain(p string, ow *tlsutil.Owner) error {
	if ow == nil {
		return nil
	}
	if err := os.Lchown(p, ow.UID, ow.GID); err != nil {
		return fmt.Errorf("chown %s: %w", p, err)
	}
	return nil
}

// ChownDir makes dir (a service's state volume root) 0700 and owned by ow.
func ChownDir(dir string, ow tlsutil.Owner) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if err := os.Lchown(dir, ow.UID, ow.GID); err != nil {
		return fmt.Errorf("chown %s: %w", dir, err)
	}
	return os.Chmod(dir, 0o700)
}

// SharedDir makes dir the secret-files volume root: owned by ow (secretsd,
// the writer), mode 2750. The setgid bit gives every file written there the
// dir's group, which the gateway also has (compose group_add), so the
// gateway can read the 0640 files and nobody else can.
func SharedDir(dir string, ow tlsutil.Owner) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if err := os.Lchown(dir, ow.UID, ow.GID); err != nil {
		return fmt.Errorf("chown %s: %w", dir, err)
	}
	return os.Chmod(dir, 0o750|os.ModeSetgid)
}

// Rotate reissues every identity's leaf under the current CA (or a new CA
// with ca=true, keeping the old one in the bundle for the overlap). Key
// files keep their owner and mode, so compose services can still read them.
func Rotate(pkiDir string, ca bool, now time.Time) (tlsutil.Result, error) {
	var leaves []tlsutil.LeafSpec
	for _, id := range Identities() {
		l := leafSpec(id, nil)
		if fi, err := os.Stat(tlsutil.FilesFor(pkiDir, id).Key); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && (int(st.Uid) != os.Getuid() || int(st.Gid) != os.Getgid()) {
				l.Owner = &tlsutil.Owner{UID: int(st.Uid), GID: int(st.Gid), Mode: fi.Mode().Perm()}
			}
		}
		leaves = append(leaves, l)
	}
	return tlsutil.Rotate(pkiDir, leaves, ca, now)
}
