//go:build integration

package integration

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/services/testharness"
)

// An upstream ~/.moltbot as an operator has it before this build: JSON5,
// a 48-char hex token with 16 distinct characters (weak), plain secrets,
// auth profiles, credentials 0644 and the seed's own plain backup.
const (
	mfToken   = "0123456789abcdef0123456789abcdef0123456789abcdef"
	mfBot     = "123456789:AAH-plain-migrate-from-bot-token"
	mfAPIKey  = "sk-plain-migrate-from-openai-key-0123"
	mfProfile = "sk-ant-plain-migrate-from-profile-key"
	mfConfig  = `// upstream moltbot config
{
  gateway: { auth: { mode: "token", token: "` + mfToken + `" } },
  channels: {
    telegram: { botToken: "` + mfBot + `", baseUrl: "http://127.0.0.1:1", dmPolicy: "pairing" },
  },
  models: { providers: { openai: { apiKey: "` + mfAPIKey + `" } } },
}
`
)

// `security migrate --from DIR` brings an upstream state dir into the
// running stack through the gateway: no plain secret is left in any file
// of the gateway's state (backups included), the weak token is reported,
// `gateway restart` applies the result in place (same process), and
// `rollback --backup migration --yes` restores the original bytes.
func TestMigrateFromUpstreamIntoTheStack(t *testing.T) {
	l := testharness.StartLocal(t, testharness.LocalOptions{})
	up := t.TempDir()
	write := func(rel, content string, mode os.FileMode) {
		p := filepath.Join(up, rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), mode))
		require.NoError(t, os.Chmod(p, mode))
	}
	write("moltbot.json", mfConfig, 0o644)
	write("moltbot.json.backup", mfConfig, 0o644) // seed checklist step 1
	write("agents/main/agent/auth-profiles.json", `{"version":1,"profiles":{"anthropic:default":{"type":"api_key","provider":"anthropic","key":"`+mfProfile+`"}}}`, 0o644)
	write("credentials/telegram-allowFrom.json", `{"version":1,"allowFrom":["4242"]}`, 0o644)
	secrets := []string{mfToken, mfBot, mfAPIKey, mfProfile}

	// The operator's CLI home: the owner bundle only.
	home := t.TempDir()
	pki := filepath.Join(home, "pki")
	require.NoError(t, os.MkdirAll(pki, 0o700))
	for _, n := range []string{"ca.pem", "cli.pem", "cli-key.pem", "cli.token"} {
		b, err := os.ReadFile(filepath.Join(l.PKIDir(), n))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(pki, n), b, 0o600))
	}
	bin := moltbotBinary(t)
	addr := l.Addr(testharness.Gateway)
	cli := func(args ...string) (string, int) {
		cmd := exec.Command(bin, args...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "MOLTBOT_STATE_DIR=" + home,
			"MOLTBOT_SECRETSD_ADDR=" + l.Addr(testharness.Secretsd), "MOLTBOT_GATEWAY=" + addr}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok {
			return out.String(), ee.ExitCode()
		}
		require.NoError(t, err)
		return out.String(), 0
	}
	state := l.StateDir(testharness.Gateway)
	pid := l.Pid(testharness.Gateway)

	// --state-dir pointing at the upstream dir never migrates the stack.
	out, code := cli("--state-dir", up, "security", "migrate", "--dry-run")
	require.NotEqual(t, 0, code, out)
	require.Contains(t, out, "moltbot security migrate --from "+up)

	out, code = cli("security", "migrate", "--from", up, "--dry-run")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "plan (dry run, nothing written)")
	cfg, err := os.ReadFile(l.ConfigPath())
	if err == nil {
		require.NotContains(t, string(cfg), "migrate-from", "a dry run writes nothing")
	}

	out, code = cli("security", "migrate", "--from", up)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "migrating "+up+" into the running stack at "+addr)
	require.Contains(t, out, "imported from "+up+": 4 file(s)")
	require.Contains(t, out, "your own plain-text backup is now sealed as moltbot.json.backup.operator.")
	require.Contains(t, out, "gateway.auth.token: weak token")
	t.Logf("migrate --from:\n%s", out)

	// No plain secret in any file of the gateway's state, backups included;
	// every file there is private.
	require.NoError(t, filepath.WalkDir(state, func(p string, d os.DirEntry, err error) error {
		require.NoError(t, err)
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		for _, s := range secrets {
			require.False(t, bytes.Contains(b, []byte(s)), "%s holds a plain secret", p)
		}
		fi, _ := d.Info()
		require.Zero(t, fi.Mode().Perm()&0o077, "%s is %v", p, fi.Mode())
		return nil
	}))
	_, err = os.Stat(filepath.Join(state, "credentials", "telegram-allowFrom.json"))
	require.NoError(t, err)

	// The weak token is reported again on the next run, until it is fixed.
	out, code = cli("security", "migrate")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "weak token", out)

	out, code = cli("rollback", "--list")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "(--backup migration)")
	require.Contains(t, out, "migrate")
	require.Contains(t, out, "operator's own backup")

	// Fix the token, then the running gateway applies the imported config
	// without a process restart.
	out, code = cli("config", "set", "gateway.auth.token", "Zq8-vT3!mR6#pL1@wX9$kB4%nC7^dF2=hJ5*")
	require.Equal(t, 0, code, out)
	out, code = cli("gateway", "restart")
	require.Equal(t, 0, code, out)
	require.Equal(t, pid, l.Pid(testharness.Gateway), "applied in place")

	// Back to the operator's original: refused without --yes, which then
	// restores the original bytes and says they hold plain secrets.
	out, code = cli("rollback", "--backup", "migration")
	require.NotEqual(t, 0, code, out)
	require.Contains(t, out, "--yes")
	require.NotContains(t, out, "rpc error")
	for _, s := range secrets {
		require.NotContains(t, out, s)
	}
	out, code = cli("rollback", "--backup", "migration", "--yes")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "plain-text secrets")
	got, err := os.ReadFile(l.ConfigPath())
	require.NoError(t, err)
	require.Equal(t, mfConfig, string(got), "the original bytes, comments included")
	require.Equal(t, pid, l.Pid(testharness.Gateway))
}
