// Package statedir locates the state directory and keeps its permissions
// tight: 0700 directories and 0600 files, symlinks that leave it refused.
package statedir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Env names.
const (
	EnvStateDir   = "MOLTBOT_STATE_DIR"
	EnvConfigPath = "MOLTBOT_CONFIG_PATH"
)

// Standard sub-directories, created by Ensure.
var subdirs = []string{"keys", "pki", "tokens", "credentials", "agents", "sandbox", "sessions", "logs"}

// Resolve returns the state dir: flag value, else $MOLTBOT_STATE_DIR, else ~/.moltbot.
func Resolve(flag string) (string, error) {
	dir := flag
	if dir == "" {
		dir = os.Getenv(EnvStateDir)
	}
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("find home directory: %w (set %s)", err, EnvStateDir)
		}
		dir = filepath.Join(home, ".moltbot")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("state dir %q: %w", dir, err)
	}
	return abs, nil
}

// ConfigPath returns $MOLTBOT_CONFIG_PATH or <dir>/moltbot.json.
func ConfigPath(dir string) string {
	if p := os.Getenv(EnvConfigPath); p != "" {
		return p
	}
	return filepath.Join(dir, "moltbot.json")
}

// Ensure creates dir and the standard sub-directories with mode 0700.
func Ensure(dir string) error {
	if err := mkdir(dir); err != nil {
		return err
	}
	for _, s := range subdirs {
		if err := mkdir(filepath.Join(dir, s)); err != nil {
			return err
		}
	}
	return nil
}

func mkdir(p string) error {
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create %s: %w", p, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("stat %s: %w", p, err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("%s is a symlink: the state dir must not contain symlinks to directories (replace it with a real directory)", p)
	case !fi.IsDir():
		return fmt.Errorf("%s exists and is not a directory", p)
	}
	return nil
}

// Issue is one permission problem found (and maybe fixed) by Check/Repair.
type Issue struct {
	Path    string
	Kind    string // "dir_mode", "file_mode", "symlink_escape", "owner", "unreadable"
	Mode    fs.FileMode
	Want    fs.FileMode
	Fixed   bool
	Message string
}

// Options tune Check.
type Options struct {
	Fix bool
	// Skip returns true for paths to leave alone (e.g. files another uid owns by design).
	Skip func(rel string, fi fs.FileInfo) bool
	// FileMode returns the wanted mode of a file; default 0600.
	FileMode func(rel string) fs.FileMode
}

// Check walks dir without following symlinks and reports dirs wider than
// 0700, files wider than 0600 and symlinks that leave dir. With Fix it
// tightens modes (symlinks are never followed or changed, only reported).
func Check(dir string, opt Options) ([]Issue, error) {
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, fmt.Errorf("state dir %s: %w", dir, err)
	}
	var issues []Issue
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, werr error) error {
		if werr != nil {
			issues = append(issues, Issue{Path: p, Kind: "unreadable", Message: werr.Error()})
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			issues = append(issues, Issue{Path: p, Kind: "unreadable", Message: err.Error()})
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if opt.Skip != nil && opt.Skip(rel, fi) {
			return nil
		}
		mode := fi.Mode()
		switch {
		case mode&fs.ModeSymlink != 0:
			if escapes(root, p) {
				issues = append(issues, Issue{Path: p, Kind: "symlink_escape", Message: "symlink points outside the state dir: remove it and store the file inside"})
			}
		case mode.IsDir():
			issues = appendMode(issues, p, mode.Perm(), 0o700, "dir_mode", opt.Fix)
		case mode.IsRegular():
			want := fs.FileMode(0o600)
			if opt.FileMode != nil {
				want = opt.FileMode(rel)
			}
			issues = appendMode(issues, p, mode.Perm(), want, "file_mode", opt.Fix)
		}
		return nil
	})
	return issues, err
}

func appendMode(issues []Issue, p string, have, want fs.FileMode, kind string, fix bool) []Issue {
	if have&^want == 0 {
		return issues
	}
	is := Issue{Path: p, Kind: kind, Mode: have, Want: want,
		Message: fmt.Sprintf("mode %04o is wider than %04o", have, want)}
	if fix {
		// Lchmod does not exist on Linux; p is known not to be a symlink
		// (checked with Lstat just before), so Chmod acts on p itself.
		if err := os.Chmod(p, have&want); err != nil {
			is.Message += ": fix failed: " + err.Error()
		} else {
			is.Fixed = true
		}
	}
	return append(issues, is)
}

// escapes reports whether the symlink p resolves outside root (or dangles).
func escapes(root, p string) bool {
	target, err := filepath.EvalSymlinks(p)
	if err != nil {
		return true
	}
	return target != root && !strings.HasPrefix(target, root+string(filepath.Separator))
}

// SafeJoin joins rel to dir and refuses results that leave dir, directly or
// through a symlink.
func SafeJoin(dir, rel string) (string, error) {
	if filepath.IsAbs(rel) {
		return "", fmt.Errorf("path %q must be relative to the state dir", rel)
	}
	p := filepath.Join(dir, rel)
	if p != dir && !strings.HasPrefix(p, dir+string(filepath.Separator)) {
		return "", fmt.Errorf("path %q leaves the state dir", rel)
	}
	if fi, err := os.Lstat(p); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		root, err := filepath.EvalSymlinks(dir)
		if err != nil {
			return "", fmt.Errorf("state dir %s: %w", dir, err)
		}
		if escapes(root, p) {
			return "", fmt.Errorf("path %q is a symlink that leaves the state dir", rel)
		}
	}
	return p, nil
}
