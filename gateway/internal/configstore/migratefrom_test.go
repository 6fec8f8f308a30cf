package configstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/errs"
	"github.com/moltbot/moltbot-secure/services/migrate"
	"github.com/moltbot/moltbot-secure/services/seclog"
	"github.com/moltbot/moltbot-secure/services/statedir"
)

// An upstream ~/.moltbot as the operator has it: JSON5, a 48-char hex
// token with 16 distinct characters, plain secrets, their own plain backup.
const (
	upToken   = "0123456789abcdef0123456789abcdef0123456789abcdef"
	upConfig  = "// upstream\n{\n  gateway: { auth: { mode: \"token\", token: \"" + upToken + "\" } },\n  channels: { telegram: { botToken: \"123:tg-plain-bot-token\", dmPolicy: \"pairing\" } },\n  models: { providers: { openai: { apiKey: \"sk-plain-openai-key\" } } },\n}\n"
	upProfile = `{"version":1,"profiles":{"anthropic:default":{"type":"api_key","provider":"anthropic","key":"sk-ant-plain-profile-key"}}}`
)

var upSecrets = []string{upToken, "tg-plain-bot-token", "sk-plain-openai-key", "sk-ant-plain-profile-key"}

func upstreamFiles() []ImportFile {
	return []ImportFile{
		{Path: "moltbot.json", Data: []byte(upConfig)},
		{Path: "moltbot.json.backup", Data: []byte(upConfig)},
		{Path: "agents/main/agent/auth-profiles.json", Data: []byte(upProfile)},
		{Path: "credentials/telegram-allowFrom.json", Data: []byte(`{"version":1,"allowFrom":["42"]}`)},
	}
}

func newImportStore(t *testing.T) (*Store, string) {
	dir := t.TempDir()
	key := make([]byte, seclog.KeySize)
	_, _ = rand.Read(key)
	l, err := seclog.Open(filepath.Join(dir, "logs"), key)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	st, err := New(Config{Path: filepath.Join(dir, "moltbot.json"), StateDir: dir, Secrets: newKeyring(), Log: l,
		LookupEnv: func(string) (string, bool) { return "", false }})
	require.NoError(t, err)
	_, err = st.Load(context.Background())
	require.NoError(t, err)
	return st, dir
}

func listTree(t *testing.T, dir string) map[string]string {
	out := map[string]string{}
	require.NoError(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		require.NoError(t, err)
		if d.Type().IsRegular() && !strings.HasPrefix(statedir.Rel(dir, p), "logs") {
			b, _ := os.ReadFile(p)
			out[statedir.Rel(dir, p)] = string(b)
		}
		return nil
	}))
	return out
}

func TestMigrateFromImportsSealsAndRollsBack(t *testing.T) {
	st, dir := newImportStore(t)
	ctx := auth.WithCaller(context.Background(), auth.Caller{ID: auth.IDCLI})
	const strong = "Zq8-vT3!mR6#pL1@wX9$kB4%nC7^dF2=hJ5*"
	_, err := st.Set(ctx, "gateway.auth.token", strong, true, false)
	require.NoError(t, err)
	stackCfg, err := os.ReadFile(st.cfg.Path)
	require.NoError(t, err)

	before := listTree(t, dir)
	res, err := st.MigrateFrom(ctx, "/home/op/.moltbot", upstreamFiles(), true)
	require.NoError(t, err)
	require.Equal(t, before, listTree(t, dir), "a dry run writes nothing")
	require.Contains(t, strings.Join(res.Actions, "\n"), "import 4 file(s) from /home/op/.moltbot")

	res, err = st.MigrateFrom(ctx, "/home/op/.moltbot\n\x1b[2Jfake line", upstreamFiles(), false)
	require.NoError(t, err)
	require.Contains(t, res.Actions[0], "/home/op/.moltbot\ufffd\ufffd[2Jfake line", "the client's source text is neutralized")
	require.True(t, res.Changed)
	acts := strings.Join(res.Actions, "\n")
	require.Contains(t, acts, "moltbot.json: encrypt gateway.auth.token")
	require.Contains(t, acts, "your own plain-text backup is now sealed as moltbot.json.backup.operator.")
	require.Equal(t, []string{"agents/main/agent/auth-profiles.json", "credentials/telegram-allowFrom.json", "moltbot.json", "moltbot.json.backup"}, res.Imported)
	weak := false
	for _, p := range res.Unfixed {
		weak = weak || (p.Path == "gateway.auth.token" && strings.Contains(p.Message, "weak token"))
	}
	require.True(t, weak, "the weak token is reported: %v", res.Unfixed)

	// No plain secret in any file of the state dir, backups and logs included.
	require.NoError(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		require.NoError(t, err)
		require.False(t, strings.HasPrefix(d.Name(), stagingPrefix), "staging removed: %s", p)
		if d.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			for _, s := range upSecrets {
				require.False(t, bytes.Contains(b, []byte(s)), "%s holds %q", p, s)
			}
			fi, _ := d.Info()
			require.Zero(t, fi.Mode().Perm()&0o077, "%s is %v", p, fi.Mode())
		}
		return nil
	}))
	c, err := config.Load(st.cfg.Path)
	require.NoError(t, err)
	for _, s := range config.SecretPaths(c.Raw) {
		require.Equal(t, config.StateEnvelope, s.State, s.Path)
	}

	list, err := st.ListBackups()
	require.NoError(t, err)
	writers := map[string]string{}
	for _, b := range list {
		writers[b.Name] = b.Writer
	}
	require.Equal(t, migrate.WriterMigrate, writers["moltbot.json.backup.migration"])
	require.Equal(t, migrate.WriterMigrate, writers["auth-profiles.json.backup.migration"])
	var imp, op int
	for _, w := range writers {
		if w == WriterImport {
			imp++
		}
		if w == migrate.WriterOperator {
			op++
		}
	}
	require.Equal(t, 1, imp, "the stack's own config was sealed before it was replaced: %v", writers)
	require.Equal(t, 1, op, "%v", writers)

	// The stack's previous config is one of the timestamped backups.
	found := false
	for _, b := range list {
		if b.Writer == WriterImport {
			data, err := os.ReadFile(b.Path)
			require.NoError(t, err)
			_, orig, err := migrate.OpenBackup(ctx, st.decrypter(), b.Path, data)
			require.NoError(t, err)
			require.Equal(t, string(stackCfg), string(orig))
			found = true
		}
	}
	require.True(t, found)

	// Rolling back to before the migration restores plain secrets: refused
	// without yes (nothing written), done with yes and said so.
	mid := listTree(t, dir)
	_, err = st.Rollback(ctx, migrate.MigrationName, false)
	require.ErrorIs(t, err, errs.ErrFailedPrecondition)
	require.ErrorContains(t, err, "gateway.auth.token")
	require.ErrorContains(t, err, "--yes")
	require.NotContains(t, err.Error(), upToken)
	require.Equal(t, mid, listTree(t, dir))

	rb, err := st.Rollback(ctx, migrate.MigrationName, true)
	require.NoError(t, err)
	require.Contains(t, rb.From, "moltbot.json.backup.migration")
	require.Contains(t, rb.Plaintext, "moltbot.json: gateway.auth.token")
	got, _ := os.ReadFile(st.cfg.Path)
	require.Equal(t, upConfig, string(got), "the original bytes, comments included")
	got, _ = os.ReadFile(filepath.Join(dir, "agents/main/agent/auth-profiles.json"))
	require.Equal(t, upProfile, string(got))
}

func TestMigrateFromRefusesBadInputAndWritesNothing(t *testing.T) {
	big := bytes.Repeat([]byte(" "), config.MaxFileBytes+1)
	tests := []struct {
		name  string
		files []ImportFile
		want  string
	}{
		{"escaping path", []ImportFile{{Path: "moltbot.json", Data: []byte("{}")}, {Path: "../../etc/passwd", Data: []byte("x")}}, `path "../../etc/passwd": not imported`},
		{"keys are not imported", []ImportFile{{Path: "moltbot.json", Data: []byte("{}")}, {Path: "keys/secrets.key", Data: []byte("{}")}}, "not imported"},
		{"traversal in agent id", []ImportFile{{Path: "moltbot.json", Data: []byte("{}")}, {Path: "agents/../agent/auth-profiles.json", Data: []byte("{}")}}, "not imported"},
		{"no config", []ImportFile{{Path: "credentials/x.json", Data: []byte("{}")}}, "no moltbot.json"},
		{"both configs", []ImportFile{{Path: "moltbot.json", Data: []byte("{}")}, {Path: "clawdbot.json", Data: []byte("{}")}}, "both moltbot.json and clawdbot.json"},
		{"twice", []ImportFile{{Path: "moltbot.json", Data: []byte("{}")}, {Path: "moltbot.json", Data: []byte("{}")}}, "sent twice"},
		{"bad JSON5", []ImportFile{{Path: "moltbot.json", Data: []byte("{ gateway: ")}}, "moltbot.json:1"},
		{"too big", []ImportFile{{Path: "moltbot.json", Data: big}}, "limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, dir := newImportStore(t)
			before := listTree(t, dir)
			_, err := st.MigrateFrom(context.Background(), "/up", tc.files, false)
			require.ErrorContains(t, err, tc.want)
			require.ErrorIs(t, err, errs.ErrInvalidArgument)
			require.Equal(t, before, listTree(t, dir))
		})
	}
}
