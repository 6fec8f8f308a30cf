package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/moltbot/moltbot-secure/services/errs"
)

// File references (${file:PATH}) resolve only beneath the roots listed in
// secrets.fileRoots, opened with os.Root, so neither ".." nor a symlink can
// leave a root. Without the rule, a client could point a provider's apiKey
// at any file the gateway can read (its own key, token, state) and send it
// to a baseUrl of its choosing.
const FileRootsPath = "secrets.fileRoots"

// DefaultFileRoots is used when secrets.fileRoots is unset: the
// secret-files volume, mounted read-only into the gateway and filled by
// `moltbot secrets put-file` (through secretsd).
var DefaultFileRoots = []string{"/secret-files"}

// ProtectedDirs are the stack's PKI and state mounts (docker-compose.yml):
// no file root may contain one or lie inside one. The running service adds
// its own state and PKI dirs through ResolveOptions.
var ProtectedDirs = []string{"/pki", "/state"}

// FileRoots returns secrets.fileRoots as written, or DefaultFileRoots.
func (c *Config) FileRoots() []string {
	v, ok := GetIn(c.Raw, []string{"secrets", "fileRoots"})
	if !ok {
		return append([]string(nil), DefaultFileRoots...)
	}
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, e := range list {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// CheckFileRoots refuses a root that is not an absolute clean path, is "/",
// or overlaps (contains, equals or lies inside) a protected dir. Existing
// paths are compared after following symlinks too, so a root that is a link
// into a state dir is caught.
func CheckFileRoots(roots, protected []string) error {
	bad := fileRootProblems(roots, protected)
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("%s %s: %s; list only dedicated directories such as %s (the secret-files volume): %w",
		FileRootsPath, quoteList(roots), strings.Join(bad, "; "), DefaultFileRoots[0], errs.ErrInvalidArgument)
}

// fileRootProblems is CheckFileRoots' findings, one per bad root.
func fileRootProblems(roots, protected []string) []string {
	var bad []string
	for _, r := range roots {
		switch {
		case !filepath.IsAbs(r):
			bad = append(bad, fmt.Sprintf("%q is not an absolute path", r))
			continue
		case filepath.Clean(r) != r:
			bad = append(bad, fmt.Sprintf("%q is not clean (write %q)", r, filepath.Clean(r)))
			continue
		case r == "/":
			bad = append(bad, `"/" would expose every file`)
			continue
		}
		for _, p := range protected {
			if p == "" {
				continue
			}
			if overlaps(r, filepath.Clean(p)) || overlaps(realPath(r), realPath(p)) {
				bad = append(bad, fmt.Sprintf("%q overlaps %s, which holds keys or service state", r, p))
				break
			}
		}
	}
	return bad
}

// overlaps reports whether a and b are the same dir or one is inside the other.
func overlaps(a, b string) bool {
	return a == b || within(a, b) || within(b, a)
}

// within reports whether p lies strictly inside dir (both clean, absolute).
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != "." && filepath.IsLocal(rel)
}

func realPath(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return filepath.Clean(p)
}

// readFileRef reads the file a ${file:PATH} reference names: an absolute
// PATH must lie beneath one of the roots; a relative one is taken beneath
// the first root. The open goes through os.Root, so ".." and symlinks that
// leave the root fail, and the content is bounded like any config value.
func readFileRef(p string, o ResolveOptions) (string, error) {
	protected := append(append(append([]string(nil), ProtectedDirs...), o.Protected...), o.StateDir)
	if err := CheckFileRoots(o.FileRoots, protected); err != nil {
		return "", err
	}
	if len(o.FileRoots) == 0 {
		return "", fmt.Errorf("file reference ${file:%s}: %s is empty, so no file may be referenced; list a root or use ${VAR}", p, FileRootsPath)
	}
	root, rel := o.FileRoots[0], p
	if filepath.IsAbs(p) {
		root = ""
		for _, r := range o.FileRoots {
			if within(filepath.Clean(p), r) {
				root, rel = r, strings.TrimPrefix(filepath.Clean(p), r+"/")
				break
			}
		}
		if root == "" {
			return "", fmt.Errorf("file reference ${file:%s} is outside the file roots %s; put the file there with `moltbot secrets put-file NAME` and write ${file:NAME}, or list its directory in %s",
				p, quoteList(o.FileRoots), FileRootsPath)
		}
	}
	if !filepath.IsLocal(rel) {
		return "", fmt.Errorf("file reference ${file:%s} leaves the file root %s; use a path beneath it", p, root)
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return "", fmt.Errorf("file reference ${file:%s}: file root %s: %v", p, root, errors.Unwrap(err))
	}
	defer r.Close()
	f, err := r.Open(rel)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("file reference ${file:%s}: no such file beneath %s (`moltbot secrets list-files` shows what is there)", p, root)
		}
		// os.Root's error for a symlink or ".." out of the root.
		return "", fmt.Errorf("file reference ${file:%s}: cannot open beneath %s: %v", p, root, errors.Unwrap(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("file reference ${file:%s}: %v", p, errors.Unwrap(err))
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("file reference ${file:%s}: not a regular file", p)
	}
	b, err := ReadBounded(f, Text{Where: "file reference ${file:" + p + "}", Noun: "file", MaxBytes: MaxValueBytes})
	if err != nil {
		return "", err
	}
	return string(b), nil
}
