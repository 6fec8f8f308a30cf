package audit

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/moltbot/moltbot-secure/services/atomicfile"
)

// Snapshot limits: enough for a real state dir, bounded for a huge one.
const (
	MaxEntries     = 20000
	MaxContentSize = 256 << 10
)

// SnapshotDir walks dir without following symlinks and records each entry's
// mode, owner and symlink target, plus the bytes of small files worth
// scanning for plaintext secrets. Unreadable entries are recorded with Err
// (the engine reports them); only a missing or unusable dir is an error.
func SnapshotDir(dir string) (Snapshot, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Snapshot{}, fmt.Errorf("state dir %s: %w", dir, err)
	}
	snap := Snapshot{Root: abs}
	fi, err := os.Lstat(abs)
	if err != nil {
		return snap, fmt.Errorf("state dir %s: %w", abs, err)
	}
	root := abs
	if fi.Mode()&fs.ModeSymlink != 0 {
		// The state dir itself may be a symlink (a moved home); walk its
		// target but judge escapes against the target.
		target, _ := os.Readlink(abs)
		real, err := filepath.EvalSymlinks(abs)
		if err != nil {
			return snap, fmt.Errorf("state dir %s -> %s: %w", abs, target, err)
		}
		root = real
		if fi, err = os.Stat(real); err != nil {
			return snap, fmt.Errorf("state dir %s: %w", real, err)
		}
	}
	if !fi.IsDir() {
		return snap, fmt.Errorf("state dir %s is not a directory", abs)
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		realRoot = root
	}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, werr error) error {
		if len(snap.Entries) >= MaxEntries {
			snap.Truncated = true
			return fs.SkipAll
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if werr != nil {
			// A directory that cannot be listed was already visited once.
			if n := len(snap.Entries); n > 0 && snap.Entries[n-1].Rel == rel {
				snap.Entries[n-1].Err = cleanErr(werr)
				return nil
			}
			e := Entry{Rel: rel, Err: cleanErr(werr)}
			if fi, err := os.Lstat(p); err == nil {
				fillEntry(&e, fi)
			}
			snap.Entries = append(snap.Entries, e)
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			// Removed or renamed since the dir was listed (a temp file, a
			// rotated log): nothing left to judge.
			return nil
		}
		if err != nil {
			snap.Entries = append(snap.Entries, Entry{Rel: rel, Err: cleanErr(err)})
			return nil
		}
		if isWriterTemp(fi) {
			return nil
		}
		e := Entry{Rel: rel}
		fillEntry(&e, fi)
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			e.Symlink, _ = os.Readlink(p)
			e.Escapes = escapes(realRoot, p)
		case fi.Mode().IsRegular() && fi.Size() <= MaxContentSize && worthReading(rel):
			b, err := readNoFollow(p)
			if errors.Is(err, fs.ErrNotExist) {
				return nil // renamed away between the Lstat and the open
			}
			if err != nil {
				e.Err = "read: " + cleanErr(err)
			}
			e.Content = b
		}
		snap.Entries = append(snap.Entries, e)
		return nil
	})
	if err != nil {
		return snap, fmt.Errorf("walk %s: %w", root, err)
	}
	return snap, nil
}

// isWriterTemp: an atomicfile temp file (the config's, the security log
// head's) caught mid-write. Only a private regular file is skipped, as
// atomicfile makes them; a hidden file of that name with a wider mode is
// still judged.
func isWriterTemp(fi fs.FileInfo) bool {
	return fi.Mode().IsRegular() && fi.Mode().Perm()&0o077 == 0 && atomicfile.IsTemp(fi.Name())
}

func fillEntry(e *Entry, fi fs.FileInfo) {
	e.Mode, e.IsDir, e.Size = fi.Mode(), fi.IsDir(), fi.Size()
	e.UID = -1
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		e.UID = int(st.Uid)
	}
}

// cleanErr drops the absolute path from an fs error: the entry already
// names its relative path.
func cleanErr(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Op + ": " + pe.Err.Error()
	}
	return err.Error()
}

// worthReading: the files that may hold secrets in text.
func worthReading(rel string) bool {
	base := path.Base(rel)
	if isCopy(rel) || base == "auth-profiles.json" || strings.HasPrefix(rel, "credentials/") {
		return true
	}
	// The config (any name) at the top of the state dir.
	return !strings.Contains(rel, "/") && (strings.HasSuffix(base, ".json") || strings.HasSuffix(base, ".json5"))
}

// readNoFollow reads a regular file, refusing a symlink swapped in since
// the Lstat.
func readNoFollow(p string) ([]byte, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, MaxContentSize))
}

// escapes reports whether the symlink p resolves outside root, or dangles
// (its target could be created anywhere later).
func escapes(root, p string) bool {
	target, err := filepath.EvalSymlinks(p)
	if err != nil {
		return true
	}
	return target != root && !strings.HasPrefix(target, root+string(filepath.Separator))
}
