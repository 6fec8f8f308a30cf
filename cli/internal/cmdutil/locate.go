package cmdutil

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/moltbot/moltbot-secure/services/statedir"
)

// PointerPath is where `make up` names the stack it started (shown to people).
const PointerPath = "~/.moltbot/stack.json"

// BundleDirName is the bundle dir `make up` writes at the repo root.
const BundleDirName = ".moltbot"

// Pointer is ~/.moltbot/stack.json, written by `make up` (deploy/stack-pointer.sh).
type Pointer struct {
	BundleDir string `json:"bundle_dir"`
	Gateway   string `json:"gateway"`
}

// Location is the state dir the CLI uses and why.
type Location struct {
	Dir    string
	Source string // "--state-dir", "$MOLTBOT_STATE_DIR", "./.moltbot", PointerPath, "~/.moltbot"
	// Gateway is the address the pointer gives for this dir ("" when none).
	Gateway string
}

// Locate finds the state dir, first match wins: --state-dir, then
// $MOLTBOT_STATE_DIR, then a .moltbot bundle (with pki/ca.pem) in cwd or a
// parent up to the repo root (the dir holding .git), then the dir the
// pointer names, then ~/.moltbot. So the CLI run from the checkout finds
// the bundle `make up` wrote, and from anywhere else the pointer does.
func Locate(flag, cwd, home string) (Location, error) {
	ptr, _ := ReadPointer(home)
	withGateway := func(l Location) (Location, error) {
		abs, err := filepath.Abs(l.Dir)
		if err != nil {
			return l, fmt.Errorf("state dir %q: %w", l.Dir, err)
		}
		l.Dir = abs
		if ptr.BundleDir != "" && filepath.Clean(ptr.BundleDir) == abs {
			l.Gateway = ptr.Gateway
		}
		return l, nil
	}
	if flag != "" {
		return withGateway(Location{Dir: flag, Source: "--state-dir"})
	}
	if env := os.Getenv(statedir.EnvStateDir); env != "" {
		return withGateway(Location{Dir: env, Source: "$" + statedir.EnvStateDir})
	}
	if d := findBundleUp(cwd, home); d != "" {
		return withGateway(Location{Dir: d, Source: "./" + BundleDirName})
	}
	if ptr.BundleDir != "" && isBundle(ptr.BundleDir) {
		return withGateway(Location{Dir: ptr.BundleDir, Source: PointerPath})
	}
	if home == "" {
		return Location{}, fmt.Errorf("find home directory: set %s or pass --state-dir", statedir.EnvStateDir)
	}
	return withGateway(Location{Dir: filepath.Join(home, ".moltbot"), Source: "~/.moltbot"})
}

// ReadPointer reads home/.moltbot/stack.json; a missing or unreadable
// pointer is no pointer (the other places still apply).
func ReadPointer(home string) (Pointer, error) {
	var p Pointer
	if home == "" {
		return p, os.ErrNotExist
	}
	b, err := os.ReadFile(filepath.Join(home, ".moltbot", "stack.json"))
	if err != nil {
		return p, err
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return Pointer{}, fmt.Errorf("%s: %w", PointerPath, err)
	}
	return p, nil
}

// findBundleUp walks from cwd to the repo root (a dir holding .git), never
// above home, looking for a .moltbot bundle.
func findBundleUp(cwd, home string) string {
	if cwd == "" {
		return ""
	}
	for d := filepath.Clean(cwd); ; d = filepath.Dir(d) {
		if home != "" && d == filepath.Clean(home) {
			return "" // ~/.moltbot is the last fallback, not a bundle found by walking
		}
		if c := filepath.Join(d, BundleDirName); isBundle(c) {
			return c
		}
		if _, err := os.Stat(filepath.Join(d, ".git")); err == nil {
			return ""
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

// isBundle: dir holds a client bundle (at least the CA).
func isBundle(dir string) bool { return fileExists(filepath.Join(dir, "pki", "ca.pem")) }
