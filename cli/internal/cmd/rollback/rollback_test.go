package rollback

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	"github.com/moltbot/moltbot-secure/services/envelope"
	smigrate "github.com/moltbot/moltbot-secure/services/migrate"
)

type box struct{ aead cipher.AEAD }

func newBox(t *testing.T) box {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	b, err := aes.NewCipher(key)
	require.NoError(t, err)
	a, err := cipher.NewGCMWithRandomNonce(b)
	require.NoError(t, err)
	return box{a}
}

func (b box) Encrypt(_ context.Context, pt []byte, aad string) (string, error) {
	out := b.aead.Seal(nil, nil, pt, []byte(aad))
	return envelope.Envelope{KID: "k1", Nonce: out[:12], CT: out[12:]}.Encode()
}

func TestFlags(t *testing.T) {
	t.Setenv("MOLTBOT_SECRETSD_ADDR", "")
	for _, tc := range []struct {
		args []string
		want Options
	}{
		{nil, Options{SecretsAddr: "127.0.0.1:18790"}},
		{[]string{"--backup", "moltbot.json.backup.2026"}, Options{Backup: "moltbot.json.backup.2026", SecretsAddr: "127.0.0.1:18790"}},
		{[]string{"--backup", "migration", "--yes"}, Options{Backup: "migration", Yes: true, SecretsAddr: "127.0.0.1:18790"}},
		{[]string{"--list"}, Options{List: true, SecretsAddr: "127.0.0.1:18790"}},
	} {
		var got *Options
		cmd := NewCmd(&cmdutil.Factory{}, func(o *Options) error { got = o; return nil })
		cmd.SetArgs(tc.args)
		require.NoError(t, cmd.Execute())
		require.Equal(t, tc.want, *got)
	}
}

func TestListAndBackupExclusive(t *testing.T) {
	cmd := NewCmd(&cmdutil.Factory{}, func(*Options) error { return nil })
	cmd.SetArgs([]string{"--list", "--backup", "migration"})
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	require.ErrorContains(t, cmd.Execute(), "none of the others can be")
}

// --list reads the state dir's backups (here offline, from real sealed
// files) and shows time, writer, size and the name --backup takes.
func TestListLocalShowsWriterTimeAndSize(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "moltbot.json")
	box := newBox(t)
	now := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	_, err := smigrate.WriteSealedBackup(smigrate.WithWriter(context.Background(), smigrate.WriterAuditFix), box, dir, cfg, []byte("{}"), now)
	require.NoError(t, err)
	_, err = smigrate.WriteMigrationBackup(context.Background(), box, dir, cfg, []byte(`{"a":1}`), now.Add(-time.Hour))
	require.NoError(t, err)
	out := &bytes.Buffer{}
	f := &cmdutil.Factory{StateDirFlag: dir, Out: out, Err: &bytes.Buffer{}}
	resp, err := listLocal(f)
	require.NoError(t, err)
	require.Len(t, resp.GetBackups(), 3)
	printList(f, resp)
	text := out.String()
	require.Contains(t, text, "2026-05-06 07:08:09  audit --fix")
	require.Contains(t, text, "moltbot.json.backup.migration (--backup migration)")
	require.Contains(t, text, "2026-05-06 06:08:09  migrate")
	require.Regexp(t, `audit --fix\s+\d{3,}\s+moltbot.json`, text)
}
