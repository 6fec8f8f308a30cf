package configstore

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/gateway/internal/seckey"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/envelope"
	"github.com/moltbot/moltbot-secure/services/errs"
	"github.com/moltbot/moltbot-secure/services/seclog"
)

// keyring seals like secretsd: AES-256-GCM envelopes bound to their AAD,
// versioned keys, rotate adds a primary, rewrap re-seals under it.
type keyring struct {
	mu   sync.Mutex
	keys map[string][]byte
	kid  string
}

func newKeyring() *keyring {
	k := &keyring{keys: map[string][]byte{}}
	_, _ = k.Rotate(context.Background())
	return k
}

func (k *keyring) aead(kid string) (cipher.AEAD, error) {
	key, ok := k.keys[kid]
	if !ok {
		return nil, fmt.Errorf("unknown key %s: %w", kid, errs.ErrInvalidArgument)
	}
	b, _ := aes.NewCipher(key)
	return cipher.NewGCMWithRandomNonce(b)
}

func (k *keyring) Encrypt(_ context.Context, pt []byte, aad string) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	g, err := k.aead(k.kid)
	if err != nil {
		return "", err
	}
	ct := g.Seal(nil, nil, pt, []byte(aad))
	return envelope.Envelope{KID: k.kid, Nonce: ct[:12], CT: ct[12:]}.Encode()
}

func (k *keyring) Decrypt(_ context.Context, env, aad string) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	e, err := envelope.Decode(env)
	if err != nil {
		return nil, err
	}
	g, err := k.aead(e.KID)
	if err != nil {
		return nil, err
	}
	pt, err := g.Open(nil, nil, append(append([]byte{}, e.Nonce...), e.CT...), []byte(aad))
	if err != nil {
		return nil, fmt.Errorf("envelope does not open for %s: %w", aad, errs.ErrInvalidArgument)
	}
	return pt, nil
}

func (k *keyring) Rewrap(ctx context.Context, env, aad string) (string, bool, error) {
	e, err := envelope.Decode(env)
	if err != nil {
		return "", false, err
	}
	if e.KID == k.kid {
		return env, false, nil
	}
	pt, err := k.Decrypt(ctx, env, aad)
	if err != nil {
		return "", false, err
	}
	out, err := k.Encrypt(ctx, pt, aad)
	return out, err == nil, err
}

func (k *keyring) Rotate(context.Context) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	k.kid = fmt.Sprintf("k%d", len(k.keys)+1)
	k.keys[k.kid] = key
	return k.kid, nil
}

func (k *keyring) Ping(context.Context) error { return nil }

// Each write, reveal, rotation and reload the store carries out is recorded
// once, by the store, as the caller's; reads without reveal are not.
func TestStoreRecordsItsDecisions(t *testing.T) {
	dir := t.TempDir()
	key := make([]byte, seclog.KeySize)
	_, _ = rand.Read(key)
	l, err := seclog.Open(filepath.Join(dir, "logs"), key)
	require.NoError(t, err)
	defer l.Close()
	st, err := New(Config{Path: filepath.Join(dir, "moltbot.json"), StateDir: dir, Secrets: newKeyring(), Log: l,
		LookupEnv: func(string) (string, bool) { return "", false }})
	require.NoError(t, err)
	_, err = st.Load(context.Background())
	require.NoError(t, err)
	ctx := auth.WithCaller(context.Background(), auth.Caller{ID: auth.IDCLI, Addr: "172.18.0.1"})
	const token = "Zq8-vT3!mR6#pL1@wX9$kB4%nC7^dF2=hJ5*"

	_, err = st.Set(ctx, "gateway.auth.token", token, true, false)
	require.NoError(t, err)
	shown, err := st.Get(ctx, "gateway.auth.token", false)
	require.NoError(t, err)
	require.Equal(t, `"`+ShownEncrypted+`"`, shown, "not HTML-escaped (\u003c)")
	v, err := st.Get(ctx, "gateway.auth.token", true)
	require.NoError(t, err)
	require.Contains(t, v, token)
	_, err = st.Get(ctx, "", true)
	require.NoError(t, err)
	_, _, err = st.RotateKey(ctx, true)
	require.NoError(t, err)
	snap, _, err := st.Prepare(ctx)
	require.NoError(t, err)
	st.Commit(context.Background(), snap) // SIGHUP: no caller
	_, err = st.Set(ctx, "gateway.auth.token", "", false, true)
	require.NoError(t, err)
	_, err = st.Set(ctx, "no.such..path", "1", false, false)
	require.Error(t, err, "a refused write")
	rb, err := st.Rollback(ctx, "", false)
	require.NoError(t, err)
	from := rb.From

	type row struct{ kind, actor, target string }
	var got []row
	var raw strings.Builder
	_, err = l.Verify(func(_ int, line string) {
		var ln seclog.Line
		require.NoError(t, json.Unmarshal([]byte(line), &ln))
		got = append(got, row{ln.Kind, ln.Actor, ln.Target})
		raw.WriteString(line)
	})
	require.NoError(t, err)
	require.Equal(t, []row{
		{"config.set", auth.IDCLI, "gateway.auth.token"},
		{"config.reveal", auth.IDCLI, "gateway.auth.token"},
		{"config.reveal", auth.IDCLI, "(whole config)"},
		{"key.rotate", auth.IDCLI, "k2"},
		{"key.rewrap", auth.IDCLI, "k2"},
		{"config.reload", "", st.Path()},
		{"config.unset", auth.IDCLI, "gateway.auth.token"},
		{"config.rollback", auth.IDCLI, st.Path()},
	}, got)
	require.Contains(t, raw.String(), from)
	require.NotContains(t, raw.String(), token, "never a secret in the log")

	// A reveal that cannot be recorded is not shown.
	require.NoError(t, l.Close())
	_, err = st.Get(ctx, "gateway.auth.token", true)
	require.ErrorIs(t, err, errs.ErrUnavailable)
	require.ErrorContains(t, err, "--reveal is refused")
	_, err = st.Get(ctx, "gateway.auth.token", false)
	require.NoError(t, err, "plain reads do not depend on the log")
}

// RotateKey with rewrap re-seals the security log's key too: after the old
// key is retired the gateway still unseals it at start.
func TestRotateKeyRewrapsTheLogKey(t *testing.T) {
	dir := t.TempDir()
	kr := newKeyring()
	sk := seckey.New(filepath.Join(dir, "logs"), kr)
	key, _, err := sk.LoadOrCreate(context.Background())
	require.NoError(t, err)
	st, err := New(Config{Path: filepath.Join(dir, "moltbot.json"), StateDir: dir, Secrets: kr, Sealed: []SealedFile{sk},
		LookupEnv: func(string) (string, bool) { return "", false }})
	require.NoError(t, err)
	kid, n, err := st.RotateKey(context.Background(), true)
	require.NoError(t, err)
	require.Equal(t, 1, n, "the key file is the only envelope")
	raw, err := os.ReadFile(sk.Path())
	require.NoError(t, err)
	require.Contains(t, string(raw), `"kid":"`+kid+`"`)
	delete(kr.keys, "k1") // retired
	got, err := sk.Unseal(context.Background())
	require.NoError(t, err)
	require.Equal(t, key, got)
	_, n, err = st.RotateKey(context.Background(), false)
	require.NoError(t, err)
	require.Zero(t, n)
}
