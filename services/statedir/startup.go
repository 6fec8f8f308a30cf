package statedir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Change is one mode a daemon tightened at start-up.
type Change struct {
	Path     string
	From, To fs.FileMode
}

// StartupReport is what FixAtStart changed and what it left for the operator.
type StartupReport struct {
	Changes []Change
	// Problems are found but not fixed: symlinks (never followed), entries
	// that could not be opened safely, and a pki dir wider than it should be
	// (the pki mount is read-only: checked, not changed).
	Problems []Issue
}

// Logger is the part of a daemon's logger FixAtStart uses (hclog fits).
type Logger interface {
	Info(msg string, args ...any)
	Warn(msg string, args ...any)
}

// PKIMode is the widest mode a file in the pki dir may have: public certs
// and the token digests may be world-readable (every service reads them),
// the bootstrap client token group-readable, everything else (keys, service
// tokens) private.
func PKIMode(rel string) fs.FileMode {
	base := filepath.Base(rel)
	switch {
	case strings.HasSuffix(base, ".pem") && !strings.HasSuffix(base, "-key.pem") || base == "digests.json":
		return 0o644
	case base == "gateway-auth.token":
		// The bootstrap client token (pkiinit.GatewayTokenFile) is shared
		// with the CLI's group: 0440 under compose.
		return 0o640
	}
	return 0o600
}

// FixAtStart is each daemon's start-up permission fix (seed section 5):
// every directory under dir becomes at most 0700 and every file at most
// 0600. Each entry is opened with O_NOFOLLOW and changed with File.Chmod,
// so a symlink planted in the state dir (or swapped in between the walk
// and the change) is never followed: it is reported, not touched. pkiDir
// (the read-only mount; skipped when it lies inside dir) is only checked.
// Every change and every problem is logged.
func FixAtStart(dir, pkiDir string, log Logger) (StartupReport, error) {
	var rep StartupReport
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return rep, fmt.Errorf("state dir %s: %w", dir, err)
	}
	pkiAbs := ""
	if pkiDir != "" {
		if p, err := filepath.EvalSymlinks(pkiDir); err == nil {
			pkiAbs = p
		}
	}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, werr error) error {
		if werr != nil {
			rep.Problems = append(rep.Problems, Issue{Path: p, Kind: "unreadable", Message: werr.Error()})
			return nil
		}
		if p != root && p == pkiAbs {
			return fs.SkipDir // checked below, never changed
		}
		switch t := d.Type(); {
		case t&fs.ModeSymlink != 0:
			rep.Problems = append(rep.Problems, Issue{Path: p, Kind: "symlink",
				Message: "is a symlink: not followed and not changed (replace it with the file itself)"})
			return nil
		case d.IsDir():
			return tighten(&rep, p, 0o700, true)
		case t.IsRegular():
			return tighten(&rep, p, 0o600, false)
		}
		return nil // sockets, fifos: not ours to change
	})
	if err != nil {
		return rep, err
	}
	if pkiAbs != "" {
		rep.Problems = append(rep.Problems, checkPKI(pkiAbs)...)
	}
	if log != nil {
		for _, c := range rep.Changes {
			log.Info("state dir: tightened permissions", "path", c.Path, "from", fmt.Sprintf("%04o", c.From), "to", fmt.Sprintf("%04o", c.To))
		}
		for _, p := range rep.Problems {
			log.Warn("state dir: permission problem left for the operator", "path", p.Path, "problem", p.Message)
		}
	}
	return rep, nil
}

// errChangedType is Tighten's refusal when p is not what the walk saw.
var errChangedType = errors.New("changed type while being checked: not changed")

// Tighten narrows p's mode to at most want (0700 for a directory, 0600 for
// a file are the state dir's rule). It opens p with O_NOFOLLOW and changes
// the open file (File.Chmod), so a symlink is never followed and the change
// lands on the very file that was checked. changed is false when p was
// already narrow enough.
func Tighten(p string, want fs.FileMode) (c Change, changed bool, err error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return Change{}, false, err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return Change{}, false, fmt.Errorf("%s is a symlink: not followed and not changed (replace it with the file itself)", p)
	}
	dir := fi.IsDir()
	flags := os.O_RDONLY | syscall.O_NOFOLLOW | syscall.O_NONBLOCK | syscall.O_CLOEXEC
	if dir {
		flags |= syscall.O_DIRECTORY
	}
	f, err := os.OpenFile(p, flags, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return Change{}, false, fmt.Errorf("%s became a symlink: not followed and not changed", p)
		}
		return Change{}, false, fmt.Errorf("%s cannot be opened safely: %w", p, err)
	}
	defer f.Close()
	ofi, err := f.Stat()
	if err != nil || ofi.IsDir() != dir || (!dir && !ofi.Mode().IsRegular()) {
		return Change{}, false, fmt.Errorf("%s %w", p, errChangedType)
	}
	have := ofi.Mode().Perm()
	if have&^want == 0 {
		return Change{}, false, nil
	}
	if err := f.Chmod(have & want); err != nil {
		return Change{}, false, fmt.Errorf("%s: mode %04o is wider than %04o and could not be changed: %w", p, have, want, err)
	}
	return Change{Path: p, From: have, To: have & want}, true, nil
}

// tighten is Tighten inside the start-up walk: a failure is a problem to
// report (and a directory it could not open is not descended).
func tighten(rep *StartupReport, p string, want fs.FileMode, dir bool) error {
	c, changed, err := Tighten(p, want)
	if err != nil {
		rep.Problems = append(rep.Problems, Issue{Path: p, Kind: kindOf(dir), Want: want, Message: strings.TrimPrefix(err.Error(), p+" ")})
		if dir {
			return fs.SkipDir
		}
		return nil
	}
	if changed {
		rep.Changes = append(rep.Changes, c)
	}
	return nil
}

func kindOf(dir bool) string {
	if dir {
		return "dir_mode"
	}
	return "file_mode"
}

// checkPKI reports pki files wider than PKIMode allows. Directories are
// not judged: the shared mount must be traversable by every service uid.
func checkPKI(pki string) []Issue {
	var out []Issue
	_ = filepath.WalkDir(pki, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		want := PKIMode(Rel(pki, p))
		if have := fi.Mode().Perm(); have&^want != 0 {
			out = append(out, Issue{Path: p, Kind: "file_mode", Mode: have, Want: want,
				Message: fmt.Sprintf("pki file mode %04o is wider than %04o (the pki mount is read-only: fix it where it is written, e.g. rerun `moltbot certs init`)", have, want)})
		}
		return nil
	})
	return out
}

// Rel is p relative to base for messages and maps, or p itself when it
// has no relative form.
func Rel(base, p string) string {
	r, err := filepath.Rel(base, p)
	if err != nil {
		return p
	}
	return r
}

// GatewayMarker is the file only a gateway state dir has: the security
// log's sealed key (gateway/internal/seckey.FileName in <state>/logs),
// written at the gateway's first start. An upstream state dir lacks it.
var GatewayMarker = filepath.Join("logs", "security.key")

// IsGatewayState reports whether dir is a gateway's state dir (not an
// upstream one), so `--state-dir X security migrate` never silently acts on
// something else than X means.
func IsGatewayState(dir string) bool {
	fi, err := os.Lstat(filepath.Join(dir, GatewayMarker))
	return err == nil && fi.Mode().IsRegular()
}
