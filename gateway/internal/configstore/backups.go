package configstore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/moltbot/moltbot-secure/services/atomicfile"
	"github.com/moltbot/moltbot-secure/services/errs"
	"github.com/moltbot/moltbot-secure/services/migrate"
)

// ListBackups lists the sealed backups of the config and auth profiles,
// newest first, from their headers (nothing is decrypted).
func (s *Store) ListBackups() ([]migrate.BackupInfo, error) {
	return migrate.ListBackups(s.cfg.StateDir, s.cfg.Path)
}

// RollbackResult is what Rollback restored.
type RollbackResult struct {
	From string
	// Plaintext are the secret fields now held in plain text on disk.
	Plaintext []string
}

// Rollback restores the newest sealed backups (backup ""), the state before
// the last migration (backup "migration"), or one named config backup. A
// backup holding plain-text secrets is refused unless yes: restoring it
// writes them to disk in clear. Nothing is written on refusal.
func (s *Store) Rollback(ctx context.Context, backup string, yes bool) (RollbackResult, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var res RollbackResult
	check := migrate.PlainRestoreCheck(yes, &res.Plaintext)
	if backup == "" || backup == migrate.MigrationName {
		done, err := migrate.Rollback(ctx, migrate.RollbackOptions{StateDir: s.cfg.StateDir, ConfigPath: s.cfg.Path,
			Decrypter: s.decrypter(), Migration: backup == migrate.MigrationName, Check: check})
		if err != nil {
			return RollbackResult{}, err
		}
		suffix := migrate.BackupSuffix
		if backup != "" {
			suffix += "." + migrate.MigrationName
		}
		from := make([]string, len(done))
		for i, d := range done {
			from[i] = d + suffix
		}
		res.From = strings.Join(from, ", ")
		s.record(ctx, "config.rollback", s.cfg.Path, map[string]string{"from": res.From, "plaintext": fmt.Sprint(len(res.Plaintext))})
		return res, nil
	}
	name := filepath.Base(backup)
	if name != backup || !strings.HasPrefix(name, filepath.Base(s.cfg.Path)+migrate.BackupSuffix) {
		return RollbackResult{}, fmt.Errorf("backup %q: give %q or a file name like %s%s.<time> from `moltbot rollback --list`: %w",
			backup, migrate.MigrationName, filepath.Base(s.cfg.Path), migrate.BackupSuffix, errs.ErrInvalidArgument)
	}
	p := filepath.Join(filepath.Dir(s.cfg.Path), name)
	data, err := os.ReadFile(p)
	if err != nil {
		return RollbackResult{}, fmt.Errorf("rollback: %w: %w", err, errs.ErrNotFound)
	}
	rel, orig, err := migrate.OpenBackup(ctx, s.decrypter(), p, data)
	if err != nil {
		return RollbackResult{}, fmt.Errorf("rollback: %w", err)
	}
	if err := check(rel, orig); err != nil {
		return RollbackResult{}, fmt.Errorf("rollback: %w", err)
	}
	if err := atomicfile.WriteFile(s.cfg.Path, orig, 0o600); err != nil {
		return RollbackResult{}, fmt.Errorf("rollback: %w", err)
	}
	res.From = p
	s.record(ctx, "config.rollback", s.cfg.Path, map[string]string{"from": p, "plaintext": fmt.Sprint(len(res.Plaintext))})
	return res, nil
}
