package migrate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/moltbot/moltbot-secure/services/atomicfile"
	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/envelope"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// WriteSealedBackup seals orig (the current bytes of path, a file under
// stateDir) and writes it as <path>.backup plus a timestamped copy, the same
// form migrate writes and Rollback opens. It is the backup taken before
// every destructive config write (SetConfig too), so no backup ever holds a
// plain-text secret. It returns the <path>.backup name.
//
// The writer recorded is WithWriter's (default WriterConfigSet). An
// operator's own plain <path>.backup is sealed under a new name first
// (PreserveOperatorBackup), and timestamped copies beyond KeepBackups are
// deleted.
func WriteSealedBackup(ctx context.Context, enc Encrypter, stateDir, path string, orig []byte, now time.Time) (string, error) {
	if _, err := PreserveOperatorBackup(ctx, enc, stateDir, path, now, false); err != nil {
		return "", err
	}
	b, err := sealBackupBy(ctx, enc, relTo(stateDir, path), orig, now, writerOf(ctx))
	if err != nil {
		return "", err
	}
	bak := path + BackupSuffix
	for _, p := range []string{bak + "." + now.UTC().Format(stampLayout), bak} {
		if err := atomicfile.WriteFile(p, b, 0o600); err != nil {
			return "", fmt.Errorf("write sealed backup: %w", err)
		}
	}
	if _, err := PruneBackups(path); err != nil {
		return "", err
	}
	return bak, nil
}

// Rewrapper re-seals an envelope under the primary key inside secretsd.
type Rewrapper interface {
	Rewrap(ctx context.Context, envelope, aad string) (text string, changed bool, err error)
}

// RewrapBackup re-seals a sealed backup's content under the primary key
// (after a key rotation), so retiring the old key keeps rollback working.
// It returns the new file content and whether anything changed.
func RewrapBackup(ctx context.Context, rw Rewrapper, path string, data []byte) ([]byte, bool, error) {
	bf, err := parseBackup(path, data)
	if err != nil {
		return nil, false, err
	}
	env, err := envelope.FromMap(bf.Sealed)
	if err != nil {
		return nil, false, fmt.Errorf("backup %s: %w", path, err)
	}
	text, err := env.Encode()
	if err != nil {
		return nil, false, err
	}
	out, changed, err := rw.Rewrap(ctx, text, BackupAAD(bf.File))
	if err != nil {
		return nil, false, fmt.Errorf("backup %s: %w", path, err)
	}
	if !changed {
		return data, false, nil
	}
	m, err := config.EnvelopeValue(out)
	if err != nil {
		return nil, false, fmt.Errorf("backup %s: %w", path, err)
	}
	bf.Sealed = m
	b, err := json.MarshalIndent(bf, "", "  ")
	if err != nil {
		return nil, false, err
	}
	return append(b, '\n'), true, nil
}

// BackupFiles lists every sealed backup (newest name and timestamped
// copies) of the config and the auth profiles under stateDir.
func BackupFiles(stateDir, configPath string) ([]string, error) {
	var out []string
	for _, pat := range []string{
		configPath + BackupSuffix, configPath + BackupSuffix + ".*",
		filepath.Join(stateDir, "agents", "*", "agent", "auth-profiles.json"+BackupSuffix),
		filepath.Join(stateDir, "agents", "*", "agent", "auth-profiles.json"+BackupSuffix+".*"),
	} {
		m, err := filepath.Glob(pat)
		if err != nil {
			return nil, err
		}
		out = append(out, m...)
	}
	return out, nil
}

// Who wrote a backup, shown by `moltbot rollback --list`.
const (
	WriterMigrate   = "migrate"
	WriterConfigSet = "config set"
	WriterAuditFix  = "audit --fix"
	WriterOperator  = "operator's own backup (sealed by migrate)"
)

// MigrationName names the sealed state before the last migration:
// <file>.backup.migration, `moltbot rollback --backup migration`. It is
// kept however many later writes there are.
const MigrationName = "migration"

// KeepBackups is how many timestamped backups of a file are kept (besides
// the migration backup and operators' own backups); older ones are deleted.
const KeepBackups = 10

// stampLayout names timestamped copies: <file>.backup.<stamp>.
const stampLayout = "2006-01-02T15-04-05.000000000Z"

// operatorInfix names an operator's own backup once sealed:
// <file>.backup.operator.<stamp>.
const operatorInfix = "operator."

type writerKey struct{}

// WithWriter tags ctx so the sealed backup written under it records who
// wrote it (WriterAuditFix, ...). Untagged writes are WriterConfigSet.
func WithWriter(ctx context.Context, writer string) context.Context {
	return context.WithValue(ctx, writerKey{}, writer)
}

func writerOf(ctx context.Context) string {
	if w, ok := ctx.Value(writerKey{}).(string); ok && w != "" {
		return w
	}
	return WriterConfigSet
}

// BackupInfo is one sealed backup as `rollback --list` shows it. It is
// read from the file's header: nothing is decrypted.
type BackupInfo struct {
	// Name is the file name; rollback --backup takes it (or "migration").
	Name    string
	Path    string
	File    string // the file it backs up, relative to the state dir
	Created time.Time
	Writer  string
	Size    int64
}

// ListBackups lists every sealed backup of the config and the auth
// profiles, newest first. An unreadable file is listed with its problem as
// the writer, so a damaged backup is seen rather than hidden.
func ListBackups(stateDir, configPath string) ([]BackupInfo, error) {
	files, err := BackupFiles(stateDir, configPath)
	if err != nil {
		return nil, err
	}
	var out []BackupInfo
	for _, p := range files {
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		bi := BackupInfo{Name: filepath.Base(p), Path: p, Size: fi.Size(), Created: fi.ModTime().UTC()}
		data, err := os.ReadFile(p)
		if err == nil {
			var bf backupFile
			bf, err = parseBackup(p, data)
			if err == nil {
				bi.File, bi.Writer = bf.File, bf.Writer
				if t, perr := time.Parse(time.RFC3339Nano, bf.Created); perr == nil {
					bi.Created = t
				}
				if bi.Writer == "" {
					bi.Writer = "unknown (written before backups recorded their writer)"
				}
			}
		}
		if err != nil {
			bi.Writer = "unreadable: " + err.Error()
		}
		out = append(out, bi)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].Name > out[j].Name
	})
	return out, nil
}

// PruneBackups deletes the timestamped backups of path beyond the newest
// KeepBackups. <path>.backup, the migration backup and operators' own
// sealed backups are never deleted. It returns the files removed.
func PruneBackups(path string) ([]string, error) {
	m, err := filepath.Glob(path + BackupSuffix + ".*")
	if err != nil {
		return nil, err
	}
	type stamped struct {
		p string
		t time.Time
	}
	var copies []stamped
	prefix := filepath.Base(path) + BackupSuffix + "."
	for _, p := range m {
		t, err := time.Parse(stampLayout, strings.TrimPrefix(filepath.Base(p), prefix))
		if err != nil {
			continue // migration, operator's own, or not ours: kept
		}
		copies = append(copies, stamped{p, t})
	}
	if len(copies) <= KeepBackups {
		return nil, nil
	}
	sort.Slice(copies, func(i, j int) bool { return copies[i].t.After(copies[j].t) })
	var removed []string
	var errsOut []error
	for _, c := range copies[KeepBackups:] {
		if err := os.Remove(c.p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errsOut = append(errsOut, fmt.Errorf("delete old backup: %w", err))
			continue
		}
		removed = append(removed, c.p)
	}
	return removed, errors.Join(errsOut...)
}

// parseBackup reads a sealed backup's header (nothing is decrypted).
func parseBackup(path string, data []byte) (backupFile, error) {
	var bf backupFile
	if err := config.CheckText(data, config.Text{Where: path, Noun: "file", MaxBytes: config.MaxFileBytes * 2}); err != nil {
		return bf, err
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&bf); err != nil {
		return bf, fmt.Errorf("backup %s is not a sealed moltbot backup: %v: %w", path, err, errs.ErrInvalidArgument)
	}
	if bf.Format != backupFormat {
		return bf, fmt.Errorf("backup %s: format %q not supported (want %q): %w", path, bf.Format, backupFormat, errs.ErrInvalidArgument)
	}
	return bf, nil
}

// PreserveOperatorBackup keeps an operator's own <path>.backup (the seed's
// step 1: `cp moltbot.json moltbot.json.backup`, plain text) from being
// overwritten by the sealed backup about to take its name: it seals it as
// <path>.backup.operator.<stamp>, then removes the plain copy. It returns
// what it did (empty when there is nothing to preserve). With dryRun it
// only says what it would do.
func PreserveOperatorBackup(ctx context.Context, enc Encrypter, stateDir, path string, now time.Time, dryRun bool) (string, error) {
	bak := path + BackupSuffix
	fi, err := os.Lstat(bak)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("check %s: %w", bak, err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file (a symlink?): move it away, then rerun: %w", bak, errs.ErrInvalidArgument)
	}
	data, err := os.ReadFile(bak)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", bak, err)
	}
	if _, err := parseBackup(bak, data); err == nil {
		return "", nil // ours: sealed already
	}
	name := filepath.Base(bak) + "." + operatorInfix + now.UTC().Format(stampLayout)
	relBak := relTo(stateDir, bak)
	if dryRun {
		return fmt.Sprintf("%s: your own plain-text backup would be sealed as %s and the plain copy removed", relBak, name), nil
	}
	if enc == nil {
		return "", errors.New("migrate: no Encrypter")
	}
	sealed, err := sealBackupBy(ctx, enc, relBak, data, now, WriterOperator)
	if err != nil {
		return "", err
	}
	dst := filepath.Join(filepath.Dir(bak), name)
	if _, err := os.Lstat(dst); err == nil {
		return "", fmt.Errorf("%s exists: not overwritten; move it away, then rerun: %w", dst, errs.ErrAlreadyExists)
	}
	if err := atomicfile.WriteFile(dst, sealed, 0o600); err != nil {
		return "", fmt.Errorf("seal %s: %w", bak, err)
	}
	if err := os.Remove(bak); err != nil {
		return "", fmt.Errorf("remove the plain copy %s (sealed as %s): %w", bak, dst, err)
	}
	return fmt.Sprintf("%s: your own plain-text backup is now sealed as %s and the plain copy removed (`moltbot rollback --backup %s --yes` restores it as the config)", relBak, name, name), nil
}

// WriteMigrationBackup seals orig (a file under stateDir as it was before
// a migration) as <path>.backup.migration, for a migration that had nothing
// else to rewrite in that file (migrate --from keeps the original always).
func WriteMigrationBackup(ctx context.Context, enc Encrypter, stateDir, path string, orig []byte, now time.Time) (string, error) {
	b, err := sealBackupBy(ctx, enc, relTo(stateDir, path), orig, now, WriterMigrate)
	if err != nil {
		return "", err
	}
	p := path + BackupSuffix + "." + MigrationName
	if err := atomicfile.WriteFile(p, b, 0o600); err != nil {
		return "", fmt.Errorf("write sealed backup: %w", err)
	}
	return p, nil
}

// PlainRestoreCheck is the RollbackOptions.Check of every rollback: a
// backup holding plain-text secrets is refused unless yes (restoring writes
// them to disk in clear); with yes, each such field is added to found
// ("<file>: <path>") so the caller can say so.
func PlainRestoreCheck(yes bool, found *[]string) func(rel string, orig []byte) error {
	return func(rel string, orig []byte) error {
		plain := PlainSecrets(rel, orig)
		if len(plain) > 0 && !yes {
			return fmt.Errorf("%s in that backup holds plain-text secrets (%s): restoring writes them to disk in clear; rerun with --yes, then `moltbot security migrate` encrypts them again: %w",
				rel, strings.Join(plain, ", "), errs.ErrFailedPrecondition)
		}
		for _, p := range plain {
			*found = append(*found, rel+": "+p)
		}
		return nil
	}
}
