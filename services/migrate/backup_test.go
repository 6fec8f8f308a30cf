package migrate

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/services/config"
)

func TestMigrateCredentialsOperatorBackupAndSealedWeakToken(t *testing.T) {
	dir, cfg := setup(t)
	box := newBox(t)
	ctx := context.Background()
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	creds := filepath.Join(dir, "credentials")
	require.NoError(t, os.MkdirAll(creds, 0o755))
	require.NoError(t, os.Chmod(creds, 0o755))
	for _, f := range []string{"telegram-allowFrom.json", "telegram-pairing.json"} {
		require.NoError(t, os.WriteFile(filepath.Join(creds, f), []byte(`{"version":1}`), 0o644))
		require.NoError(t, os.Chmod(filepath.Join(creds, f), 0o644))
	}
	outside := filepath.Join(t.TempDir(), "not-ours.json")
	require.NoError(t, os.WriteFile(outside, []byte("{}"), 0o644))
	require.NoError(t, os.Chmod(outside, 0o644))
	require.NoError(t, os.Symlink(outside, filepath.Join(creds, "link.json")))
	// Seed checklist step 1: the operator's own plain copy.
	require.NoError(t, os.WriteFile(cfg+".backup", []byte(upstreamCfg), 0o644))

	before := snapshot(t, dir)
	rep, err := Run(ctx, Options{StateDir: dir, DryRun: true, Now: func() time.Time { return now }})
	require.NoError(t, err)
	require.Equal(t, before, snapshot(t, dir))
	plan := strings.Join(rep.Actions, "\n")
	operatorName := "moltbot.json.backup.operator.2026-03-04T05-06-07.000000000Z"
	for _, want := range []string{
		"chmod 0700 credentials (was 0755)",
		"chmod 0600 credentials/telegram-allowFrom.json (was 0644)",
		"chmod 0600 credentials/telegram-pairing.json (was 0644)",
		"moltbot.json.backup: your own plain-text backup would be sealed as " + operatorName,
	} {
		require.Contains(t, plan, want)
	}
	require.NotContains(t, plan, "link.json", "a symlink is never followed")

	rep, err = Run(ctx, Options{StateDir: dir, Encrypter: box, Decrypter: box, Now: func() time.Time { return now }})
	require.NoError(t, err)
	require.Contains(t, strings.Join(rep.Actions, "\n"), "moltbot.json.backup: your own plain-text backup is now sealed as "+operatorName)
	grepTree(t, dir, plainSecrets) // the operator's copy held every secret in clear
	for _, p := range []string{creds, filepath.Join(creds, "telegram-allowFrom.json"), filepath.Join(creds, "telegram-pairing.json")} {
		st, err := os.Stat(p)
		require.NoError(t, err)
		want := os.FileMode(0o600)
		if p == creds {
			want = 0o700
		}
		require.Equal(t, want, st.Mode().Perm(), p)
	}
	st, _ := os.Stat(outside)
	require.Equal(t, os.FileMode(0o644), st.Mode().Perm(), "the symlink's target is untouched")

	// Both the operator's copy and the migration backup open to the original bytes.
	for _, name := range []string{operatorName, "moltbot.json.backup." + MigrationName, "moltbot.json.backup"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		require.NoError(t, err, name)
		_, orig, err := OpenBackup(ctx, box, name, data)
		require.NoError(t, err, name)
		require.Equal(t, upstreamCfg, string(orig), name)
	}
	list, err := ListBackups(dir, cfg)
	require.NoError(t, err)
	writers := map[string]string{}
	for _, b := range list {
		writers[b.Name] = b.Writer
		require.Positive(t, b.Size)
	}
	require.Equal(t, WriterOperator, writers[operatorName])
	require.Equal(t, WriterMigrate, writers["moltbot.json.backup.migration"])
	require.Equal(t, WriterMigrate, writers["auth-profiles.json.backup.migration"])

	// The token is now sealed: config validation alone no longer sees it,
	// but every run with a Decrypter still reports it until it is fixed.
	tests := []struct {
		name string
		dec  Decrypter
		want bool
	}{
		{"with decrypter", box, true},
		{"without decrypter", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := Run(ctx, Options{StateDir: dir, Encrypter: box, Decrypter: tc.dec, Now: func() time.Time { return now.Add(time.Hour) }})
			require.NoError(t, err)
			require.False(t, rep.Changed, "%v", rep.Actions)
			found := false
			for _, p := range config.Errors(rep.Unfixed) {
				if p.Path == "gateway.auth.token" && strings.Contains(p.Message, "weak token") {
					found = true
					require.Equal(t, "moltbot token generate", p.Fix)
				}
			}
			require.Equal(t, tc.want, found, "%v", rep.Unfixed)
		})
	}
}

func TestBackupRetentionKeepsMigrationAndLastTen(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "moltbot.json")
	box := newBox(t)
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	require.NoError(t, os.WriteFile(cfg, []byte(`{"gateway":{"port":1}}`), 0o600))
	// A migration first, then many config writes.
	_, err := Run(ctx, Options{StateDir: dir, Encrypter: box, Now: func() time.Time { return t0 }})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(cfg, []byte(`{"gateway":{"auth":{"token":"x"}}}`), 0o600))
	_, err = Run(ctx, Options{StateDir: dir, Encrypter: box, Now: func() time.Time { return t0 }})
	require.NoError(t, err)
	_, err = os.Stat(cfg + ".backup.migration")
	require.NoError(t, err)

	for i := 1; i <= 14; i++ {
		wctx := ctx
		if i == 14 {
			wctx = WithWriter(ctx, WriterAuditFix)
		}
		_, err := WriteSealedBackup(wctx, box, dir, cfg, []byte(`{"n":`+string(rune('a'+i))+`}`), t0.Add(time.Duration(i)*time.Minute))
		require.NoError(t, err)
	}
	list, err := ListBackups(dir, cfg)
	require.NoError(t, err)
	var stamped []string
	names := map[string]BackupInfo{}
	for _, b := range list {
		names[b.Name] = b
		if _, err := time.Parse(stampLayout, strings.TrimPrefix(b.Name, "moltbot.json.backup.")); err == nil {
			stamped = append(stamped, b.Name)
		}
	}
	require.Len(t, stamped, KeepBackups)
	require.Contains(t, names, "moltbot.json.backup.migration", "the migration backup is kept")
	require.Contains(t, names, "moltbot.json.backup")
	require.Equal(t, WriterMigrate, names["moltbot.json.backup.migration"].Writer)
	require.Equal(t, WriterAuditFix, list[0].Writer, "newest first, writer recorded")
	require.Equal(t, WriterConfigSet, names["moltbot.json.backup."+t0.Add(13*time.Minute).Format(stampLayout)].Writer)
	// The oldest (the migration's stamp and writes 1..4) are gone; 5..14 remain.
	require.NotContains(t, names, "moltbot.json.backup."+t0.Format(stampLayout))
	require.NotContains(t, names, "moltbot.json.backup."+t0.Add(4*time.Minute).Format(stampLayout))
	require.Contains(t, names, "moltbot.json.backup."+t0.Add(5*time.Minute).Format(stampLayout))

	// The migration backup still opens to the state before the migration.
	data, err := os.ReadFile(cfg + ".backup.migration")
	require.NoError(t, err)
	_, orig, err := OpenBackup(ctx, box, "m", data)
	require.NoError(t, err)
	require.Equal(t, `{"gateway":{"auth":{"token":"x"}}}`, string(orig))
}

func TestWriteSealedBackupNeverOverwritesOperatorsOwn(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "moltbot.json")
	box := newBox(t)
	ctx := context.Background()
	now := time.Date(2026, 2, 2, 2, 2, 2, 0, time.UTC)
	mine := []byte(`{"gateway":{"auth":{"token":"operator-plain-secret-token"}}}`)
	require.NoError(t, os.WriteFile(cfg+".backup", mine, 0o644))
	_, err := WriteSealedBackup(ctx, box, dir, cfg, []byte(`{}`), now)
	require.NoError(t, err)
	grepTree(t, dir, []string{"operator-plain-secret-token"})
	name := cfg + ".backup.operator." + now.Format(stampLayout)
	data, err := os.ReadFile(name)
	require.NoError(t, err)
	_, orig, err := OpenBackup(ctx, box, name, data)
	require.NoError(t, err)
	require.Equal(t, mine, orig)
	// A second write finds only sealed backups: nothing more to preserve.
	act, err := PreserveOperatorBackup(ctx, box, dir, cfg, now.Add(time.Second), false)
	require.NoError(t, err)
	require.Empty(t, act)
}
