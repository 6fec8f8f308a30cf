package migrate

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/envelope"
	"github.com/moltbot/moltbot-secure/services/errs"
	"github.com/stretchr/testify/require"
)

// aesBox is a minimal real AES-256-GCM Encrypter/Decrypter for this package's
// tests; secretsd/internal/keyring has the same tests against the keyring.
type aesBox struct {
	aead  cipher.AEAD
	calls int
	fail  bool
}

func newBox(t testing.TB) *aesBox {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	b, err := aes.NewCipher(key)
	require.NoError(t, err)
	a, err := cipher.NewGCMWithRandomNonce(b)
	require.NoError(t, err)
	return &aesBox{aead: a}
}

func (b *aesBox) Encrypt(_ context.Context, pt []byte, aad string) (string, error) {
	b.calls++
	if b.fail {
		return "", errors.New("secretsd unavailable")
	}
	out := b.aead.Seal(nil, nil, pt, []byte(aad))
	return envelope.Envelope{KID: "k1", Nonce: out[:12], CT: out[12:]}.Encode()
}

func (b *aesBox) Decrypt(_ context.Context, text, aad string) ([]byte, error) {
	e, err := envelope.Decode(text)
	if err != nil {
		return nil, err
	}
	return b.aead.Open(nil, nil, append(append([]byte{}, e.Nonce...), e.CT...), []byte(aad))
}

const upstreamCfg = `// upstream moltbot config
{
  gateway: {
    auth: { mode: "token", token: "weak-token-123" },
    controlUi: { allowInsecureAuth: true, dangerouslyDisableDeviceAuth: false },
    remote: { token: "${REMOTE_TOKEN}" },
  },
  channels: {
    telegram: {
      botToken: "123456:telegram-plain-secret",
      dm: { policy: "open", allowFrom: ["*"] },
      accounts: { work: { botToken: "654321:work-plain-secret", dmPolicy: "open", allowFrom: ["*", 42] } },
    },
    slack: { botToken: "xoxb-slack-plain-secret", signingSecret: "slack-signing-plain-secret" },
  },
  models: { providers: { openai: { apiKey: "sk-openai-plain-secret", model: "gpt-4o" } } },
  futureUpstreamKey: { kept: true },
}
`

const profiles = `{
  "version": 1,
  "profiles": {
    "anthropic:default": { "type": "api_key", "provider": "anthropic", "key": "sk-ant-plain-secret" },
    "openai:oauth": { "type": "oauth", "access": "oauth-access-plain-secret", "refresh": "oauth-refresh-plain-secret", "expires": 1700000000 },
  },
}
`

var plainSecrets = []string{"weak-token-123", "telegram-plain-secret", "work-plain-secret", "xoxb-slack-plain-secret",
	"slack-signing-plain-secret", "sk-openai-plain-secret", "sk-ant-plain-secret", "oauth-access-plain-secret", "oauth-refresh-plain-secret"}

func setup(t *testing.T) (string, string) {
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o755))
	cfg := filepath.Join(dir, "moltbot.json")
	require.NoError(t, os.WriteFile(cfg, []byte(upstreamCfg), 0o644))
	pdir := filepath.Join(dir, "agents", "main", "agent")
	require.NoError(t, os.MkdirAll(pdir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(pdir, "auth-profiles.json"), []byte(profiles), 0o644))
	return dir, cfg
}

func grepTree(t *testing.T, dir string, needles []string) {
	t.Helper()
	require.NoError(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		require.NoError(t, err)
		if d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		for _, n := range needles {
			require.False(t, bytes.Contains(b, []byte(n)), "%s contains plain secret %q", p, n)
		}
		return nil
	}))
}

func TestMigrateUpstream(t *testing.T) {
	dir, cfg := setup(t)
	box := newBox(t)
	ctx := context.Background()
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

	// Dry run: a plan, nothing written, nothing encrypted.
	before := snapshot(t, dir)
	rep, err := Run(ctx, Options{StateDir: dir, DryRun: true, Now: func() time.Time { return now }})
	require.NoError(t, err)
	require.True(t, rep.Changed)
	require.Equal(t, before, snapshot(t, dir))
	plan := strings.Join(rep.Actions, "\n")
	for _, want := range []string{
		"back up moltbot.json, agents/main/agent/auth-profiles.json sealed under the secrets key",
		`moltbot.json: channels.telegram.dm.policy "open" -> "pairing"`,
		`moltbot.json: channels.telegram.dm.allowFrom: drop "*"`,
		`moltbot.json: channels.telegram.accounts.work.dmPolicy "open" -> "pairing"`,
		"remove gateway.controlUi.allowInsecureAuth",
		"remove gateway.controlUi.dangerouslyDisableDeviceAuth",
		"moltbot.json: encrypt gateway.auth.token",
		"moltbot.json: encrypt channels.slack.signingSecret",
		"agents/main/agent/auth-profiles.json: encrypt profiles.openai:oauth.refresh",
		"chmod 0600 moltbot.json (was 0644)",
		"chmod 0700 agents/main (was 0755)",
	} {
		require.Contains(t, plan, want)
	}
	require.NotContains(t, plan, "gateway.remote.token", "references are not encrypted")
	require.NotContains(t, plan, "plain-secret")
	require.Len(t, config.Errors(rep.Unfixed), 1)
	require.Equal(t, "gateway.auth.token", rep.Unfixed[0].Path)
	require.Equal(t, "moltbot token generate", rep.Unfixed[0].Fix)

	// The real run.
	rep, err = Run(ctx, Options{StateDir: dir, Encrypter: box, Now: func() time.Time { return now }})
	require.NoError(t, err)
	require.True(t, rep.Changed)
	require.Contains(t, rep.Written, cfg+".backup")
	require.Contains(t, rep.Written, cfg+".backup.2026-03-04T05-06-07.000000000Z")

	c, err := config.Load(cfg)
	require.NoError(t, err)
	for _, s := range config.SecretPaths(c.Raw) {
		if s.Path == "gateway.remote.token" {
			require.Equal(t, config.StateReference, s.State)
			continue
		}
		require.Equal(t, config.StateEnvelope, s.State, s.Path)
		text, _ := s.EnvelopeText()
		_, err := box.Decrypt(ctx, text, s.AAD)
		require.NoError(t, err, s.Path)
	}
	v, _ := c.Get("futureUpstreamKey.kept")
	require.Equal(t, true, v)
	v, _ = c.Get("channels.telegram.accounts.work.allowFrom")
	require.Equal(t, []any{42.0}, v)
	_, err = c.Get("channels.telegram.dm.allowFrom")
	require.ErrorIs(t, err, errs.ErrNotFound)
	// Only the weak token is left, and it is now an envelope the gateway checks.
	require.Empty(t, config.Errors(c.Validate()))
	grepTree(t, dir, plainSecrets)
	for _, p := range []string{cfg, cfg + ".backup", filepath.Join(dir, "agents/main/agent/auth-profiles.json")} {
		st, err := os.Stat(p)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), p)
	}
	st, _ := os.Stat(dir)
	require.Equal(t, os.FileMode(0o700), st.Mode().Perm())

	// Second run: nothing to do, no new backup, no encryption.
	after := snapshot(t, dir)
	calls := box.calls
	rep, err = Run(ctx, Options{StateDir: dir, Encrypter: box, Now: func() time.Time { return now.Add(time.Hour) }})
	require.NoError(t, err)
	require.False(t, rep.Changed, "%v", rep.Actions)
	require.Empty(t, rep.Written)
	require.Equal(t, calls, box.calls)
	require.Equal(t, after, snapshot(t, dir))

	// Rollback restores the original bytes of both files.
	restored, err := Rollback(ctx, RollbackOptions{StateDir: dir, Decrypter: box})
	require.NoError(t, err)
	require.Len(t, restored, 2)
	b, _ := os.ReadFile(cfg)
	require.Equal(t, upstreamCfg, string(b))
	b, _ = os.ReadFile(filepath.Join(dir, "agents/main/agent/auth-profiles.json"))
	require.Equal(t, profiles, string(b))

	// A backup opened with the wrong key refuses, and nothing is written.
	mid := snapshot(t, dir)
	_, err = Rollback(ctx, RollbackOptions{StateDir: dir, Decrypter: newBox(t)})
	require.ErrorContains(t, err, "backup "+cfg+".backup")
	require.Equal(t, mid, snapshot(t, dir))
}

func snapshot(t *testing.T, dir string) map[string]string {
	out := map[string]string{}
	require.NoError(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		require.NoError(t, err)
		info, _ := d.Info()
		if d.IsDir() {
			out[p] = info.Mode().String()
			return nil
		}
		b, _ := os.ReadFile(p)
		out[p] = info.Mode().String() + " " + string(b)
		return nil
	}))
	return out
}

func TestMigrateBadInputWritesNothing(t *testing.T) {
	tests := []struct {
		name, cfg, profile, want string
	}{
		{"not json", "this is not json", "", "moltbot.json:1:"},
		{"not an object", "[1]", "", "top level is array"},
		{"bad profile", "{}", "{profiles: ", "auth-profiles.json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, "moltbot.json"), []byte(tc.cfg), 0o600))
			if tc.profile != "" {
				p := filepath.Join(dir, "agents", "a", "agent")
				require.NoError(t, os.MkdirAll(p, 0o700))
				require.NoError(t, os.WriteFile(filepath.Join(p, "auth-profiles.json"), []byte(tc.profile), 0o600))
			}
			before := snapshot(t, dir)
			_, err := Run(context.Background(), Options{StateDir: dir, Encrypter: newBox(t)})
			require.ErrorContains(t, err, tc.want)
			require.ErrorIs(t, err, errs.ErrInvalidArgument)
			require.Equal(t, before, snapshot(t, dir))
		})
	}
	t.Run("encrypter fails", func(t *testing.T) {
		dir, _ := setup(t)
		require.NoError(t, os.Chmod(dir, 0o700))
		before := snapshot(t, dir)
		box := newBox(t)
		box.fail = true
		_, err := Run(context.Background(), Options{StateDir: dir, Encrypter: box})
		require.ErrorContains(t, err, "secretsd unavailable")
		require.Equal(t, before, snapshot(t, dir))
	})
	t.Run("rollback without backup", func(t *testing.T) {
		_, err := Rollback(context.Background(), RollbackOptions{StateDir: t.TempDir(), Decrypter: newBox(t)})
		require.ErrorIs(t, err, errs.ErrNotFound)
		require.ErrorContains(t, err, "run `moltbot security migrate` first")
	})
}
