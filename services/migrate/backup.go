package migrate

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
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
func WriteSealedBackup(ctx context.Context, enc Encrypter, stateDir, path string, orig []byte, now time.Time) (string, error) {
	b, err := sealBackup(ctx, enc, relTo(stateDir, path), orig, now)
	if err != nil {
		return "", err
	}
	bak := path + BackupSuffix
	stamp := now.UTC().Format("2006-01-02T15-04-05.000000000Z")
	for _, p := range []string{bak + "." + stamp, bak} {
		if err := atomicfile.WriteFile(p, b, 0o600); err != nil {
			return "", fmt.Errorf("write sealed backup: %w", err)
		}
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
	var bf backupFile
	if err := config.CheckText(data, config.Text{Where: path, Noun: "file", MaxBytes: config.MaxFileBytes * 2}); err != nil {
		return nil, false, err
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&bf); err != nil {
		return nil, false, fmt.Errorf("backup %s is not a sealed moltbot backup: %v: %w", path, err, errs.ErrInvalidArgument)
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
