package migrate

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	"github.com/moltbot/moltbot-secure/services/statedir"
)

func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want Options
	}{
		{nil, Options{SecretsAddr: "127.0.0.1:18790"}},
		{[]string{"--dry-run"}, Options{DryRun: true, SecretsAddr: "127.0.0.1:18790"}},
		{[]string{"--secretsd", "secretsd:18790"}, Options{SecretsAddr: "secretsd:18790"}},
		{[]string{"--from", "/home/op/.clawdbot"}, Options{From: "/home/op/.clawdbot", SecretsAddr: "127.0.0.1:18790"}},
	} {
		t.Setenv("MOLTBOT_SECRETSD_ADDR", "")
		var got *Options
		cmd := NewCmd(&cmdutil.Factory{Out: &bytes.Buffer{}, Err: &bytes.Buffer{}}, func(o *Options) error { got = o; return nil })
		cmd.SetArgs(tc.args)
		require.NoError(t, cmd.Execute())
		require.Equal(t, tc.want, *got)
	}
	cmd := NewCmd(&cmdutil.Factory{}, func(*Options) error { return nil })
	cmd.SetArgs([]string{"extra"})
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	require.Error(t, cmd.Execute())
}

// --state-dir X without --from acts on X, and only when X is a gateway
// state dir; an upstream dir is refused with the fix, before any dial.
func TestStateDirNeverSilentlyMeansTheStack(t *testing.T) {
	up := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(up, "moltbot.json"), []byte(`{gateway:{auth:{token:"x"}}}`), 0o600))
	f := &cmdutil.Factory{StateDirFlag: up, GatewayAddr: "127.0.0.1:1", Out: &bytes.Buffer{}, Err: &bytes.Buffer{}}
	err := run(context.Background(), f, &Options{DryRun: true})
	var ue *cmdutil.UsageError
	require.ErrorAs(t, err, &ue)
	require.ErrorContains(t, err, "is not a gateway state dir")
	require.ErrorContains(t, err, "moltbot security migrate --from "+up)

	// A gateway state dir is migrated offline (a dry run needs no secretsd).
	gw := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(gw, "logs"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(gw, statedir.GatewayMarker), []byte("{}"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(gw, "moltbot.json"), []byte(`{channels:{telegram:{botToken:"123:plain"}}}`), 0o600))
	out, errOut := &bytes.Buffer{}, &bytes.Buffer{}
	f = &cmdutil.Factory{StateDirFlag: gw, GatewayAddr: "127.0.0.1:1", Out: out, Err: errOut}
	require.NoError(t, run(context.Background(), f, &Options{DryRun: true, SecretsAddr: "127.0.0.1:1"}))
	require.Contains(t, errOut.String(), "migrating the gateway state dir "+gw+" offline")
	require.Contains(t, out.String(), "moltbot.json: encrypt channels.telegram.botToken")

	// The CLI's bundle (pki, no config) names the running stack, as
	// $MOLTBOT_STATE_DIR does: the stack is dialled, and said so.
	bundle := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(bundle, "pki"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(bundle, "pki", "ca.pem"), []byte("x"), 0o600))
	errOut.Reset()
	f = &cmdutil.Factory{StateDirFlag: bundle, GatewayAddr: "127.0.0.1:1", Out: &bytes.Buffer{}, Err: errOut}
	_ = run(context.Background(), f, &Options{DryRun: true, SecretsAddr: "127.0.0.1:1"})
	require.Contains(t, errOut.String(), "migrating the running stack's state at 127.0.0.1:1")
	require.NotContains(t, errOut.String(), "is not a gateway state dir")
}

func TestCollectUpstream(t *testing.T) {
	dir := t.TempDir()
	write := func(rel, content string) {
		p := filepath.Join(dir, rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
	write("clawdbot.json", "{}")
	write("clawdbot.json.backup", "{}")
	write("agents/main/agent/auth-profiles.json", "{}")
	write("agents/main/sessions/s.jsonl", "not sent")
	write("credentials/telegram-allowFrom.json", "{}")
	write("credentials/whatsapp/creds.json", "not sent: nested")
	outside := filepath.Join(t.TempDir(), "secret.json")
	require.NoError(t, os.WriteFile(outside, []byte("{}"), 0o600))
	require.NoError(t, os.Symlink(outside, filepath.Join(dir, "credentials", "link.json")))

	files, skipped, err := collect(dir)
	require.NoError(t, err)
	var rels []string
	for _, f := range files {
		rels = append(rels, f.rel)
	}
	require.Equal(t, []string{"clawdbot.json", "clawdbot.json.backup", "agents/main/agent/auth-profiles.json", "credentials/telegram-allowFrom.json"}, rels)
	require.Equal(t, []string{"credentials/link.json (not a regular file: symlinks are not followed)"}, skipped)

	_, _, err = collect(t.TempDir())
	require.ErrorContains(t, err, "has no moltbot.json or clawdbot.json")
	_, _, err = collect(filepath.Join(dir, "clawdbot.json"))
	require.ErrorContains(t, err, "is not a directory")
}
