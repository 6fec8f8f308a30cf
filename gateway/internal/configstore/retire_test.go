package configstore

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/gateway/internal/seckey"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/errs"
	"github.com/moltbot/moltbot-secure/services/seclog"
)

// Retire drops a key from the test keyring as secretsd's does: never the
// primary, never an unknown id.
func (k *keyring) Retire(_ context.Context, kid string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if kid == k.kid {
		return fmt.Errorf("key %s is the primary: %w", kid, errs.ErrFailedPrecondition)
	}
	if _, ok := k.keys[kid]; !ok {
		return fmt.Errorf("key %q is not in the keyring: %w", kid, errs.ErrNotFound)
	}
	delete(k.keys, kid)
	return nil
}

func TestRetireKey(t *testing.T) {
	dir := t.TempDir()
	kr := newKeyring()
	logKey := make([]byte, seclog.KeySize)
	_, _ = rand.Read(logKey)
	l, err := seclog.Open(filepath.Join(dir, "logs"), logKey)
	require.NoError(t, err)
	defer l.Close()
	sk := seckey.New(filepath.Join(dir, "logs"), kr)
	_, _, err = sk.LoadOrCreate(context.Background())
	require.NoError(t, err)
	st, err := New(Config{Path: filepath.Join(dir, "moltbot.json"), StateDir: dir, Secrets: kr, Sealed: []SealedFile{sk}, Log: l,
		LookupEnv: func(string) (string, bool) { return "", false }})
	require.NoError(t, err)
	_, err = st.Load(context.Background())
	require.NoError(t, err)
	ctx := auth.WithCaller(context.Background(), auth.Caller{ID: auth.IDCLI})
	_, err = st.Set(ctx, "channels.telegram.botToken", "4242:AAsecretBOTtokenAAsecretBOTtoken_r", true, false)
	require.NoError(t, err)
	_, err = st.Set(ctx, "gateway.auth.token", "Zq8-vT3!mR6#pL1@wX9$kB4%nC7^dF2=hJ5*", true, false)
	require.NoError(t, err)

	use, n, err := st.KeyUse(ctx)
	require.NoError(t, err)
	require.Equal(t, n, len(use["k1"]), "everything is under k1: %v", use)
	require.Contains(t, use["k1"], st.Path()+": channels.telegram.botToken")
	require.GreaterOrEqual(t, n, 4, "two config values, the log key and at least one sealed backup: %v", use)

	kid, _, err := st.RotateKey(ctx, false)
	require.NoError(t, err)
	require.Equal(t, "k2", kid)

	for _, tc := range []struct {
		name, kid string
		class     error
		msg       []string
	}{
		{"still in use", "k1", errs.ErrFailedPrecondition, []string{"key k1 still seals", "channels.telegram.botToken", ".backup", "rotate-key --rewrap"}},
		{"the primary", "k2", errs.ErrFailedPrecondition, []string{"primary"}},
		{"unknown", "k9", errs.ErrNotFound, []string{"not in the keyring"}},
		{"empty", " ", errs.ErrInvalidArgument, []string{"name the key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := st.RetireKey(ctx, tc.kid)
			require.ErrorIs(t, err, tc.class)
			for _, m := range tc.msg {
				require.ErrorContains(t, err, m)
			}
			require.Contains(t, kr.keys, "k1", "nothing retired")
		})
	}

	_, rewrapped, err := st.RotateKey(ctx, true)
	require.NoError(t, err)
	require.Positive(t, rewrapped)
	use, _, err = st.KeyUse(ctx)
	require.NoError(t, err)
	require.Empty(t, use["k1"])
	require.Empty(t, use["k2"])
	checked, err := st.RetireKey(ctx, "k1")
	require.NoError(t, err)
	require.Positive(t, checked)
	require.NotContains(t, kr.keys, "k1")
	// Everything still opens without k1: the config and the log key.
	v, err := st.Get(ctx, "channels.telegram.botToken", true)
	require.NoError(t, err)
	require.Contains(t, v, "4242:AAsecret")
	_, err = sk.Unseal(ctx)
	require.NoError(t, err)

	// The retire is on record; the refusals changed nothing and are not.
	var kinds []string
	_, err = l.Verify(func(_ int, line string) {
		var ln seclog.Line
		require.NoError(t, json.Unmarshal([]byte(line), &ln))
		kinds = append(kinds, ln.Kind+" "+ln.Target)
	})
	require.NoError(t, err)
	require.Contains(t, kinds, "key.retire k1")
}
