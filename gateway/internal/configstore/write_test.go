package configstore

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/errs"
	"github.com/moltbot/moltbot-secure/services/seclog"
)

func newTestStore(t *testing.T, content string) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	key := make([]byte, seclog.KeySize)
	_, _ = rand.Read(key)
	l, err := seclog.Open(filepath.Join(dir, "logs"), key)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	path := filepath.Join(dir, "moltbot.json")
	if content != "" {
		require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	}
	st, err := New(Config{Path: path, StateDir: dir, Secrets: newKeyring(), Log: l,
		LookupEnv: func(string) (string, bool) { return "", false }})
	require.NoError(t, err)
	return st, path
}

// Any config write seals every plaintext secret in the file, free-form
// places included, and says which.
func TestSetEncryptsEveryPlaintextSecret(t *testing.T) {
	const (
		gw    = "Zq8-vT3!mR6#pL1@wX9$kB4%nC7^dF2=hJ5*"
		bot   = "123456:telegram-bot-plaintext"
		env   = "sk-env-plaintext-openai"
		talk  = "eleven-plaintext-key"
		hooks = "hook-plaintext-token"
	)
	st, path := newTestStore(t, `{
  gateway: {auth: {token: "`+gw+`"}},
  channels: {telegram: {botToken: "`+bot+`"}},
  env: {OPENAI_API_KEY: "`+env+`", shellEnv: {enabled: true}},
  talk: {apiKey: "`+talk+`"},
  hooks: {token: "`+hooks+`"},
}`)
	ctx := auth.WithCaller(context.Background(), auth.Caller{ID: auth.IDCLI})
	tests := []struct {
		name, path, value string
		want              []string
	}{
		{"an unrelated field", "logging.level", "debug",
			[]string{"channels.telegram.botToken", "env.OPENAI_API_KEY", "gateway.auth.token", "hooks.token", "talk.apiKey"}},
		{"nothing left to seal", "logging.level", "info", nil},
		{"a free-form secret", "tools.web.apiKey", "brave-plaintext", []string{"tools.web.apiKey"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := st.Set(ctx, tc.path, tc.value, true, false)
			require.NoError(t, err)
			require.Equal(t, tc.want, res.EncryptedPaths)
			require.Equal(t, len(tc.want) > 0, res.Encrypted)
		})
	}
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	for _, s := range []string{gw, bot, env, talk, hooks, "brave-plaintext"} {
		require.NotContains(t, string(data), s, "no plaintext secret left in the file")
	}
	c, err := config.Load(path)
	require.NoError(t, err)
	for _, r := range config.SecretPaths(c.Raw) {
		require.Equal(t, config.StateEnvelope, r.State, r.Path)
	}
	// The sealed values still decrypt for their field.
	v, err := st.Get(ctx, "env.OPENAI_API_KEY", true)
	require.NoError(t, err)
	require.Contains(t, v, env)
}

// config set refuses a value the config model refuses, naming the field
// and the fix, and leaves the file as it was.
func TestSetRefusesInvalidValues(t *testing.T) {
	const orig = `{channels: {telegram: {dmPolicy: "pairing"}}}`
	st, path := newTestStore(t, orig)
	ctx := auth.WithCaller(context.Background(), auth.Caller{ID: auth.IDCLI})
	tests := []struct {
		path, value, want string
	}{
		{"agents.defaults.sandbox.docker.memory", "lots", `agents.defaults.sandbox.docker.memory: "lots" is not a positive size; want a number of bytes or a number with a k, m or g suffix`},
		{"agents.defaults.sandbox.docker.cpus", "500", "outside (0, 64]"},
		{"channels.telegarm.dmPolicy", "pairing", "did you mean channels.telegram?"},
		{"channels.telegram.dmPolicy", "friends", `"friends" is not one of`},
		{"channels.telegram.groups.allowFrom", "123", "want an array"},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			_, err := st.Set(ctx, tc.path, tc.value, false, false)
			require.ErrorIs(t, err, errs.ErrInvalidArgument)
			require.ErrorContains(t, err, tc.want)
			data, rerr := os.ReadFile(path)
			require.NoError(t, rerr)
			require.Equal(t, orig, string(data), "nothing written")
		})
	}
}

// ValidateConfig decrypts through secretsd and reports a weak encrypted
// token with the audit's finding id (config.DecryptedChecks).
func TestValidateReportsAWeakEncryptedToken(t *testing.T) {
	const weakHex = "0123456789abcdef0123456789abcdef0123456789abcdef"
	kr := newKeyring()
	text, err := kr.Encrypt(context.Background(), []byte(weakHex), "gateway.auth.token")
	require.NoError(t, err)
	env, err := config.EnvelopeValue(text)
	require.NoError(t, err)
	c := config.New("moltbot.json", nil)
	require.NoError(t, c.Set("gateway.auth.token", env))
	data, err := c.Marshal()
	require.NoError(t, err)
	dir := t.TempDir()
	path := filepath.Join(dir, "moltbot.json")
	require.NoError(t, os.WriteFile(path, data, 0o600))
	st, err := New(Config{Path: path, StateDir: dir, Secrets: kr, LookupEnv: func(string) (string, bool) { return "", false }})
	require.NoError(t, err)

	ps, err := st.Validate(context.Background(), "")
	require.NoError(t, err)
	var got *config.Problem
	for i := range ps {
		if ps[i].Path == "gateway.auth.token" {
			got = &ps[i]
		}
	}
	require.NotNil(t, got, "%v", ps)
	require.Equal(t, config.IDTokenLowEntropy, got.ID)
	require.Equal(t, config.SevError, got.Severity)
	require.Contains(t, got.Message, "the encrypted token has 48 characters, 16 distinct")
	require.NotContains(t, got.String(), weakHex)

	// The security audit's source: the same problem, id and text.
	dp, err := st.CheckDecrypted(context.Background())
	require.NoError(t, err)
	require.Equal(t, []config.Problem{*got}, dp)
}
