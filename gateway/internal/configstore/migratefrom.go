package configstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/errs"
	"github.com/moltbot/moltbot-secure/services/migrate"
	"github.com/moltbot/moltbot-secure/services/statedir"
	"github.com/moltbot/moltbot-secure/services/textsafe"
)

// Limits of one `security migrate --from` import.
const (
	MaxImportFiles = 256
	MaxImportBytes = 32 << 20
)

// WriterImport marks the sealed backup of the stack's own files taken
// before an import replaces them.
const WriterImport = "migrate --from (the stack's file before the import)"

// stagingPrefix names the private dir an import is migrated in before it
// is moved into place; a leftover (crash) is removed by the next import.
const stagingPrefix = ".migrate-from-"

// ImportFile is one file of an upstream state dir, by its path there.
type ImportFile struct {
	Path string
	Data []byte
}

// MigrateFromResult is what MigrateFrom did (or would do).
type MigrateFromResult struct {
	MigrateResult
	Imported []string
}

var (
	reAgentProfile = regexp.MustCompile(`^agents/([A-Za-z0-9][A-Za-z0-9._-]{0,63})/agent/auth-profiles\.json$`)
	reCredential   = regexp.MustCompile(`^credentials/[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.json$`)
)

// importTarget maps a path in the upstream dir to the path in the
// gateway's state dir (relative), or refuses it naming what is accepted.
func (s *Store) importTarget(rel string) (string, error) {
	cfgRel, err := filepath.Rel(s.cfg.StateDir, s.cfg.Path)
	if err != nil || strings.HasPrefix(cfgRel, "..") {
		return "", fmt.Errorf("the gateway's config %s is outside its state dir: migrate --from cannot place it: %w", s.cfg.Path, errs.ErrFailedPrecondition)
	}
	switch {
	case rel == config.FileName || rel == "clawdbot.json":
		return cfgRel, nil
	case rel == config.FileName+migrate.BackupSuffix || rel == "clawdbot.json"+migrate.BackupSuffix:
		return cfgRel + migrate.BackupSuffix, nil
	case reAgentProfile.MatchString(rel) && !strings.Contains(rel, ".."):
		return rel, nil
	case reCredential.MatchString(rel) && !strings.Contains(rel, ".."):
		return rel, nil
	}
	return "", fmt.Errorf("path %q: not imported (accepted: moltbot.json or clawdbot.json, its .backup, agents/<id>/agent/auth-profiles.json, credentials/<name>.json): %w", rel, errs.ErrInvalidArgument)
}

// CheckImport checks one file of an import before anything is written:
// an accepted path, the size limit, and (for JSON) the bounded parse.
func (s *Store) CheckImport(f ImportFile) error {
	if _, err := s.importTarget(f.Path); err != nil {
		return err
	}
	if len(f.Data) > config.MaxFileBytes {
		return fmt.Errorf("%s: %d bytes is over the %d-byte limit of a state file: %w", f.Path, len(f.Data), config.MaxFileBytes, errs.ErrInvalidArgument)
	}
	if strings.HasSuffix(f.Path, migrate.BackupSuffix) {
		return config.CheckText(f.Data, config.Text{Where: f.Path, Noun: "file", MaxBytes: config.MaxFileBytes})
	}
	if _, err := config.Parse(f.Path, f.Data); err != nil {
		return err
	}
	return nil
}

// MigrateFrom imports an upstream state dir sent from the operator's
// machine into the gateway's state, then migrates it. The files are
// written to a private staging dir inside the state dir and migrated
// there (every secret sealed through secretsd, the originals kept as the
// sealed migration backup); only then are they moved into place, config
// last, after a sealed backup of each stack file they replace. Pairing
// files go to pairingd. A dry run migrates the staging copy without
// writing and moves nothing.
func (s *Store) MigrateFrom(ctx context.Context, source string, files []ImportFile, dryRun bool) (MigrateFromResult, error) {
	// source is the client's text: shown and logged, so neutralized and cut.
	source = textsafe.Neutralize(source, 1024)
	if len(files) > MaxImportFiles {
		return MigrateFromResult{}, fmt.Errorf("%d files is over the limit of %d: %w", len(files), MaxImportFiles, errs.ErrInvalidArgument)
	}
	seen := map[string]bool{}
	var total int
	hasConfig := false
	for _, f := range files {
		if seen[f.Path] {
			return MigrateFromResult{}, fmt.Errorf("path %q sent twice: %w", f.Path, errs.ErrInvalidArgument)
		}
		seen[f.Path] = true
		total += len(f.Data)
		if err := s.CheckImport(f); err != nil {
			return MigrateFromResult{}, err
		}
		if f.Path == config.FileName || f.Path == "clawdbot.json" {
			hasConfig = true
		}
	}
	if seen[config.FileName] && seen["clawdbot.json"] {
		return MigrateFromResult{}, fmt.Errorf("both moltbot.json and clawdbot.json were sent: send the one in use: %w", errs.ErrInvalidArgument)
	}
	if !hasConfig {
		return MigrateFromResult{}, fmt.Errorf("no moltbot.json (or clawdbot.json) in %s: give an upstream state dir such as ~/.moltbot or ~/.clawdbot: %w", source, errs.ErrInvalidArgument)
	}
	if total > MaxImportBytes {
		return MigrateFromResult{}, fmt.Errorf("%d bytes in all is over the %d-byte import limit: %w", total, MaxImportBytes, errs.ErrInvalidArgument)
	}

	s.wmu.Lock()
	defer s.wmu.Unlock()
	removeStaging(s.cfg.StateDir)
	staging, err := os.MkdirTemp(s.cfg.StateDir, stagingPrefix+"*")
	if err != nil {
		return MigrateFromResult{}, diskErr(s.cfg.StateDir, err)
	}
	defer os.RemoveAll(staging)
	var res MigrateFromResult
	var origCfg []byte
	for _, f := range files {
		rel, _ := s.importTarget(f.Path)
		p := filepath.Join(staging, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return MigrateFromResult{}, diskErr(p, err)
		}
		if err := os.WriteFile(p, f.Data, 0o600); err != nil {
			return MigrateFromResult{}, diskErr(p, err)
		}
		if rel == statedir.Rel(s.cfg.StateDir, s.cfg.Path) {
			origCfg = f.Data
		}
		res.Imported = append(res.Imported, f.Path)
	}
	sort.Strings(res.Imported)
	stCfg := filepath.Join(staging, statedir.Rel(s.cfg.StateDir, s.cfg.Path))
	rep, err := migrate.Run(ctx, migrate.Options{StateDir: staging, ConfigPath: stCfg, Encrypter: s.encrypter(), Decrypter: s.decrypter(), DryRun: dryRun, Now: s.cfg.Now})
	if err != nil {
		return MigrateFromResult{}, err
	}
	res.Report = rep
	for i, w := range res.Written { // staging names -> where they end up
		res.Written[i] = filepath.Join(s.cfg.StateDir, statedir.Rel(staging, w))
	}
	if dryRun {
		res.Actions = append([]string{fmt.Sprintf("import %d file(s) from %s", len(files), source)}, res.Actions...)
		acts, _, err := s.importPairingFrom(ctx, filepath.Join(staging, "credentials"), true)
		res.Actions = append(res.Actions, acts...)
		return res, err
	}
	// The original is always kept, sealed, even when migrate had nothing
	// to rewrite in it.
	if _, err := os.Stat(stCfg + migrate.BackupSuffix + "." + migrate.MigrationName); errors.Is(err, fs.ErrNotExist) {
		if _, err := migrate.WriteMigrationBackup(ctx, s.encrypter(), staging, stCfg, origCfg, s.cfg.Now()); err != nil {
			return MigrateFromResult{}, err
		}
	}
	moved, err := s.moveIntoPlace(ctx, staging)
	if err != nil {
		return res, err
	}
	res.Changed = true
	res.BackupPath = s.cfg.Path + migrate.BackupSuffix + "." + migrate.MigrationName
	res.Actions = append([]string{fmt.Sprintf("imported %d file(s) from %s; moved %d into the state dir", len(files), source, moved)}, res.Actions...)
	acts, _, err := s.importPairingFrom(ctx, filepath.Join(s.cfg.StateDir, "credentials"), false)
	res.Actions = append(res.Actions, acts...)
	if err != nil {
		return res, err
	}
	if _, err := migrate.PruneBackups(s.cfg.Path); err != nil {
		return res, err
	}
	s.record(ctx, "config.migrate_from", s.cfg.Path, map[string]string{"source": source, "files": fmt.Sprint(len(files)), "backup": res.BackupPath})
	if _, err := s.Load(ctx); err != nil {
		s.log.Warn("imported config not reloaded; `moltbot gateway restart` reports why", "error", err.Error())
	}
	return res, nil
}

// moveIntoPlace renames every file of staging into the state dir, config
// last; each stack file about to be replaced (config, auth profiles) is
// first sealed as a backup. Renames replace a symlink, never follow it.
func (s *Store) moveIntoPlace(ctx context.Context, staging string) (int, error) {
	var rels []string
	err := filepath.WalkDir(staging, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rels = append(rels, statedir.Rel(staging, p))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	cfgRel := statedir.Rel(s.cfg.StateDir, s.cfg.Path)
	sort.SliceStable(rels, func(i, j int) bool { return rels[i] != cfgRel && rels[j] == cfgRel })
	bctx := migrate.WithWriter(ctx, WriterImport)
	for _, rel := range rels {
		dst := filepath.Join(s.cfg.StateDir, rel)
		if rel == cfgRel || reAgentProfile.MatchString(filepath.ToSlash(rel)) {
			if old, err := os.ReadFile(dst); err == nil {
				if _, err := migrate.WriteSealedBackup(bctx, s.encrypter(), s.cfg.StateDir, dst, old, s.cfg.Now()); err != nil {
					return 0, diskErr(dst+migrate.BackupSuffix, err)
				}
			}
		}
	}
	for n, rel := range rels {
		dst := filepath.Join(s.cfg.StateDir, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return n, diskErr(dst, err)
		}
		if err := os.Rename(filepath.Join(staging, rel), dst); err != nil {
			return n, diskErr(dst, err)
		}
	}
	return len(rels), nil
}

// removeStaging deletes staging dirs a crashed import left behind (they
// may hold plain-text secrets).
func removeStaging(stateDir string) {
	m, _ := filepath.Glob(filepath.Join(stateDir, stagingPrefix+"*"))
	for _, p := range m {
		_ = os.RemoveAll(p)
	}
}
