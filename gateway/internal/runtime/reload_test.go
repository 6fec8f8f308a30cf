package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/gateway/internal/channels/telegram/telegramtest"
	"github.com/moltbot/moltbot-secure/gateway/internal/configstore"
	"github.com/moltbot/moltbot-secure/gateway/internal/policy"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/envelope"
)

const (
	tokenA = "tA7x9Qm2Lp4Zr8Vw1Ks6Nd3Hj5Fb0Gc-Ye_Uo" // strong (auth.CheckToken)
	tokenB = "tB4n7Wq1Ez9Rx3Mc6Kv8Pl2Hs5Jd0Fg-Ua_Yi"
)

// noSecrets stands in for secretsd (tested for real in services/integration):
// its "envelope" is the plaintext with a zero tag, enough for the config
// store's sealed backups; nothing else is asked of it.
type noSecrets struct{}

var errNoSecrets = errors.New("no secretsd in this test")

func (noSecrets) Encrypt(_ context.Context, p []byte, _ string) (string, error) {
	return envelope.Envelope{KID: "test", Nonce: make([]byte, envelope.NonceSize), CT: append(append([]byte(nil), p...), make([]byte, envelope.TagSize)...)}.Encode()
}
func (noSecrets) Decrypt(_ context.Context, text, _ string) ([]byte, error) {
	e, err := envelope.Decode(text)
	if err != nil {
		return nil, err
	}
	return e.CT[:len(e.CT)-envelope.TagSize], nil
}
func (noSecrets) Rewrap(context.Context, string, string) (string, bool, error) {
	return "", false, errNoSecrets
}
func (noSecrets) Rotate(context.Context) (string, error) { return "", errNoSecrets }
func (noSecrets) Ping(context.Context) error             { return nil }

type reloadEnv struct {
	path  string
	store *configstore.Store
	mgr   *Manager
	auth  *auth.GatewayToken
	r     *Reloader
	token string
}

func writeTree(t testing.TB, path string, tree map[string]any) {
	t.Helper()
	b, err := json.MarshalIndent(tree, "", "  ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b, 0o600))
}

func newReloadEnv(t testing.TB, tree map[string]any) *reloadEnv {
	t.Helper()
	dir := t.TempDir()
	e := &reloadEnv{path: filepath.Join(dir, "moltbot.json")}
	writeTree(t, e.path, tree)
	st, err := configstore.New(configstore.Config{Path: e.path, StateDir: dir, PKIDir: filepath.Join(dir, "pki"), Secrets: noSecrets{}})
	require.NoError(t, err)
	ctx := context.Background()
	snap, err := st.Load(ctx)
	require.NoError(t, err)
	e.store = st
	e.token = snap.View.Gateway.Auth.Token.Plain
	e.auth = auth.NewGatewayToken(e.token)
	secret := func(*configstore.Snapshot) SecretFunc { return plainSecret }
	e.mgr, err = NewManager(ctx, depsTB(t, &echoAgent{}), snap.Config, plainSecret)
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.mgr.Close(5 * time.Second) })
	e.r = &Reloader{Store: st, Manager: e.mgr, Secret: secret, Auth: e.auth,
		Token: func(s *configstore.Snapshot) (string, string, error) {
			tok, _ := s.Secret("gateway.auth.token")
			if tok == "" {
				tok = s.View.Gateway.Auth.Token.Plain
			}
			return tok, "gateway.auth.token", nil
		},
		OnToken: func(tok, _ string) { e.token = tok },
	}
	return e
}

func withToken(tree map[string]any, tok string) map[string]any {
	return set(tree, "gateway.auth.token", tok)
}

// TestReloaderWholeOrNothing: a refused reload leaves the config
// snapshot, the runtime and the token as they were; an accepted one swaps
// all three and lists what changed.
func TestReloaderWholeOrNothing(t *testing.T) {
	fake := telegramtest.NewServer(botToken)
	defer fake.Close()
	cases := []struct {
		name    string
		write   func(path string)
		applied bool
		want    string // in a problem (refused) or a change (applied)
	}{
		{"syntax error", func(p string) { require.NoError(t, os.WriteFile(p, []byte(`{"channels": {`), 0o600)) }, false, "moltbot.json"},
		{"weak token", func(p string) { writeTree(t, p, withToken(base(), "short")) }, false, "gateway.auth.token"},
		{"telegram account rejected", func(p string) {
			writeTree(t, p, set(withToken(base(), tokenA), "channels.telegram",
				map[string]any{"enabled": true, "botToken": "999:WRONG-token-abcdefghijk", "baseUrl": fake.URL()}))
		}, false, "channels.telegram"},
		{"new token, dm allowlist and listen port", func(p string) {
			tree := set(withToken(base(), tokenB), "channels.local.dm.allowFrom", []any{"alice"})
			writeTree(t, p, set(tree, "gateway.port", 18999))
		}, true, "gateway token rotated"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newReloadEnv(t, withToken(base(), tokenA))
			snap, rt := e.store.Current(), e.mgr.Current()
			tc.write(e.path)
			res, err := e.r.Reload(context.Background())
			require.NoError(t, err)
			require.Equal(t, tc.applied, res.Applied, "%+v", res)
			var text []string
			for _, p := range res.Problems {
				text = append(text, p.Path+" "+p.Message+" "+p.File)
			}
			text = append(text, res.Changes...)
			all := strings.Join(text, "\n")
			require.Contains(t, all, tc.want)
			require.NotContains(t, all, tokenB)
			require.NotContains(t, all, "WRONG-token")
			_, _, okA := e.auth.Verify("", tokenA)
			_, _, okB := e.auth.Verify("", tokenB)
			if !tc.applied {
				require.Same(t, snap, e.store.Current(), "the running config stays")
				require.Same(t, rt, e.mgr.Current(), "the running runtime stays")
				require.True(t, okA, "the old token still works")
				return
			}
			require.NotSame(t, snap, e.store.Current())
			require.NotSame(t, rt, e.mgr.Current())
			require.False(t, okA, "the old token is refused")
			require.True(t, okB)
			require.Equal(t, tokenB, e.token)
			require.Contains(t, all, "channels.local policies: dm allowlist (1 allowed)")
			require.Contains(t, all, "docker compose restart gateway", "the listen port names the restart")
			require.False(t, send(t, e.mgr, "bob", "hi").ReachedAgent, "bob left the allowlist")
		})
	}
}

// TestAddOwner: pairing approve --owner writes channels.<ch>.owner and
// reloads, so the sender is an owner on the next message.
func TestAddOwner(t *testing.T) {
	e := newReloadEnv(t, withToken(base(), tokenA))
	ctx := context.Background()
	require.Equal(t, policy.ReasonDMConfigAllow, send(t, e.mgr, "bob", "hi").Decision)
	require.NoError(t, e.r.AddOwner(ctx, "local", "bob"))
	require.Equal(t, policy.ReasonDMOwner, send(t, e.mgr, "bob", "hi").Decision, "owner at once, no restart")
	require.Equal(t, []string{"alice", "bob"}, e.store.Current().View.Channels["local"].Owner)
	b, err := os.ReadFile(e.path)
	require.NoError(t, err)
	require.Contains(t, string(b), `"bob"`, "written to the file")
	rt := e.mgr.Current()
	require.NoError(t, e.r.AddOwner(ctx, "local", "bob"), "already an owner: nothing to do")
	require.Same(t, rt, e.mgr.Current(), "no reload for no change")
	require.Error(t, e.r.AddOwner(ctx, "local", ""), "an empty sender id is refused")
}

// BenchmarkReload: `gateway restart` to the new runtime serving, with 3
// channels configured (local, telegram on a fake Bot API, and discord,
// which this gateway does not run), against a config read (GetConfig).
func BenchmarkReload(b *testing.B) {
	fake := telegramtest.NewServer(botToken)
	defer fake.Close()
	tree := withToken(base(), tokenA)
	set(tree, "channels.telegram", map[string]any{"enabled": true, "botToken": botToken, "baseUrl": fake.URL(),
		"dm": map[string]any{"policy": "allowlist", "allowFrom": []any{"42"}}})
	set(tree, "channels.discord", map[string]any{"enabled": true, "dm": map[string]any{"policy": "pairing"}})
	e := newReloadEnv(b, tree)
	ctx := context.Background()
	b.Run("reload", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			// Each round changes a policy, so a whole new runtime is built.
			b.StopTimer()
			set(tree, "channels.local.dm.allowFrom", []any{"alice", "bob", string(rune('a' + i%26))})
			writeTree(b, e.path, tree)
			b.StartTimer()
			res, err := e.r.Reload(ctx)
			if err != nil || !res.Applied {
				b.Fatalf("reload: %v %+v", err, res.Problems)
			}
			// Serving: the new runtime answers a local message.
			if r := send(b, e.mgr, "alice", "hi"); !r.ReachedAgent {
				b.Fatalf("not serving: %s", r.Decision)
			}
		}
	})
	b.Run("get-config", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := e.store.Get(ctx, "", false); err != nil {
				b.Fatal(err)
			}
		}
	})
}
