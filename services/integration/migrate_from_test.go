//go:build integration

package integration

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
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
    // Disabled: reload checks a running Telegram account with getMe, and
    // this test is about the import, not the Bot API.
    telegram: { enabled: false, botToken: "` + mfBot + `", baseUrl: "http://127.0.0.1:1", dmPolicy: "pairing" },
  },
  models: { providers: { openai: { apiKey: "` + mfAPIKey + `" } } },
}
`
)

// `security migrate --from DIR` brings an upstream state dir into the
// running stack through the gateway: no plain secret is left in any file
// of the gateway's state (backups included), the weak token is reported,
// `gateway restart` applies the result in place (no container restart), and
// `rollback --backup migration --yes` restores the original bytes.
func TestMigrateFromUpstreamIntoTheStack(t *testing.T) {
	e := startSecrets(t)
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
	cli := func(args ...string) (string, int) {
		r := e.cli("", args...)
		return r.out, r.code
	}
	state := e.st.StateDir(testharness.Gateway)
	started := gatewayStartedAt(t, e)

	// --state-dir pointing at the upstream dir never migrates the stack.
	out, code := cli("--state-dir", up, "security", "migrate", "--dry-run")
	require.NotEqual(t, 0, code, out)
	require.Contains(t, out, "moltbot security migrate --from "+up)

	before, _ := os.ReadFile(e.cfgPath())
	out, code = cli("security", "migrate", "--from", up, "--dry-run")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "plan (dry run, nothing written)")
	after, _ := os.ReadFile(e.cfgPath())
	require.Equal(t, before, after, "a dry run writes nothing")

	out, code = cli("security", "migrate", "--from", up)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "migrating "+up+" into the running stack at "+e.addr)
	require.Contains(t, out, "imported from "+up+": 4 file(s)")
	require.Contains(t, out, "your own plain-text backup is now sealed as moltbot.json.backup.operator.")
	require.Contains(t, out, "gateway.auth.token: weak token")
	t.Logf("migrate --from:\n%s", out)

	// No plain secret in any file of the gateway's state (the volume),
	// backups included; every file there is private.
	grepState(t, state, secrets...)
	require.NoError(t, filepath.WalkDir(state, func(p string, d os.DirEntry, err error) error {
		require.NoError(t, err)
		if d.Type().IsRegular() {
			fi, _ := d.Info()
			require.Zero(t, fi.Mode().Perm()&0o077, "%s is %v", p, fi.Mode())
		}
		return nil
	}))
	_, err := os.Stat(filepath.Join(state, "credentials", "telegram-allowFrom.json"))
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

	// validate and audit report the imported (now encrypted) weak token
	// alike: the same id and text, from the value only secretsd can open.
	const weakText = "the encrypted token has 48 characters, 16 distinct"
	out, code = cli("config", "validate")
	require.NotEqual(t, 0, code, out)
	require.Contains(t, out, weakText)
	out, code = cli("security", "audit", "--json")
	require.Contains(t, out, `"id": "gateway.auth.token_low_entropy"`, out)
	require.Contains(t, out, weakText)

	// audit --fix replaces it through secretsd and reaches the bar, with no
	// critical and no failed fix.
	out, code = cli("security", "audit", "--fix")
	require.Equal(t, 0, code, out)
	t.Logf("audit --fix:\n%s", out)
	require.NotContains(t, out, "failed:")
	m := regexp.MustCompile(`Security score: (\d+)/100`).FindAllStringSubmatch(out, -1)
	require.NotEmpty(t, m, out)
	score, _ := strconv.Atoi(m[len(m)-1][1])
	require.GreaterOrEqual(t, score, 85, out)
	require.NotContains(t, out, "CRITICAL")

	// The running gateway applies the fixed, imported config without a
	// container restart.
	out, code = cli("gateway", "restart")
	require.Equal(t, 0, code, out)
	require.Equal(t, started, gatewayStartedAt(t, e), "applied in place: the gateway did not restart")
	out, code = cli("config", "get", "channels.telegram.dmPolicy")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "pairing")

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
	got, err := os.ReadFile(e.cfgPath())
	require.NoError(t, err)
	require.Equal(t, mfConfig, string(got), "the original bytes, comments included")
}

// gatewayStartedAt is the gateway's own start time from Status.
func gatewayStartedAt(t *testing.T, e *secretsEnv) time.Time {
	t.Helper()
	r, err := e.st.AdminGateway(t).Status(ctxFor(t, 10*time.Second), &gatewayv1.StatusRequest{})
	require.NoError(t, err)
	for _, s := range r.GetServices() {
		if s.GetName() == testharness.Gateway {
			require.NotNil(t, s.GetStartedAt())
			return s.GetStartedAt().AsTime()
		}
	}
	t.Fatalf("no gateway in status: %v", r.GetServices())
	return time.Time{}
}
