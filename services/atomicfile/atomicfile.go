// Package atomicfile writes files so that a crash at any point leaves either
// the old or the new whole file, never a torn one: temp file in the same
// directory, fsync, rename over the target, fsync the directory.
//
// github.com/google/renameio/v2 does the temp file, the fsync and the rename
// (with static permissions, so umask does not widen or narrow the mode), but it
// does not fsync the directory, without which the rename itself may be lost on
// power failure; this package adds that step.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/renameio/v2"
)

// WriteFile atomically replaces path with data, created with exactly perm.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	// WithTempDir: renameio would otherwise put the temp file in $TMPDIR
	// when that is on the same device, and the renamed file would keep
	// $TMPDIR's group instead of a setgid dir's (the secret-files volume).
	t, err := renameio.NewPendingFile(path, renameio.WithStaticPermissions(perm), renameio.WithTempDir(filepath.Dir(path)))
	if err != nil {
		return fmt.Errorf("write %s: create temp file: %w", path, err)
	}
	defer t.Cleanup() //nolint:errcheck // removes the temp file on any early return
	if _, err := t.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := t.CloseAtomicallyReplace(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// IsTemp reports whether base has the form of the temp file WriteFile makes
// while it writes a sibling NAME: "." + NAME + random digits (renameio's
// name). They exist for an instant and are renamed away or removed; a
// directory scan (the audit's snapshot) uses this to tell them apart.
func IsTemp(base string) bool {
	if !strings.HasPrefix(base, ".") {
		return false
	}
	rest := base[1:]
	i := len(rest)
	for i > 0 && rest[i-1] >= '0' && rest[i-1] <= '9' {
		i--
	}
	return i > 0 && i < len(rest)
}

// WriteWithBackup first copies the current content of path (if it exists) to
// backupPath atomically, then atomically replaces path. Both files get perm.
// The caller picks the backup name and must not ask for a backup of a file
// that holds plain-text secrets (migrate seals its backup instead).
func WriteWithBackup(path string, data []byte, perm os.FileMode, backupPath string) error {
	old, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := WriteFile(backupPath, old, perm); err != nil {
			return fmt.Errorf("backup before write: %w", err)
		}
	case errors.Is(err, fs.ErrNotExist):
	default:
		return fmt.Errorf("backup before write: read %s: %w", path, err)
	}
	return WriteFile(path, data, perm)
}

// SyncDir fsyncs a directory so that a rename or link inside it is durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}
