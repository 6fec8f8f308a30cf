package keyring

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moltbot/moltbot-secure/services/envelope"
	"github.com/moltbot/moltbot-secure/services/errs"
	"github.com/stretchr/testify/require"
)

func openIn(t testing.TB, dir string) *Keyring {
	t.Helper()
	k, err := Open(Config{Store: NewFileStore(filepath.Join(dir, "keys", "secrets.key"))})
	require.NoError(t, err)
	return k
}

func TestOpenCreatesPrivateKeyFile(t *testing.T) {
	dir := t.TempDir()
	k := openIn(t, dir)
	st, err := os.Stat(filepath.Join(dir, "keys", "secrets.key"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	dst, err := os.Stat(filepath.Join(dir, "keys"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), dst.Mode().Perm())
	require.Equal(t, "k1", k.Primary())

	// A second open loads the same key: what one sealed the other opens.
	text, _, err := k.EncryptString([]byte("s3cret"), "gateway.auth.token")
	require.NoError(t, err)
	k2 := openIn(t, dir)
	pt, kid, err := k2.DecryptString(text, "gateway.auth.token")
	require.NoError(t, err)
	require.Equal(t, "s3cret", string(pt))
	require.Equal(t, "k1", kid)
}

// Two first starts racing must end with one key that both use.
func TestConcurrentFirstStartsMakeOneKey(t *testing.T) {
	for range 20 {
		dir := t.TempDir()
		const n = 8
		rings := make([]*Keyring, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				k, err := Open(Config{Store: NewFileStore(filepath.Join(dir, "keys", "secrets.key"))})
				if err == nil {
					rings[i] = k
				}
			})
		}
		wg.Wait()
		fp := ""
		for i, k := range rings {
			require.NotNil(t, k, "open %d failed", i)
			st := k.Status()
			require.Len(t, st.Keys, 1)
			if fp == "" {
				fp = st.Keys[0].Fingerprint
			}
			require.Equal(t, fp, st.Keys[0].Fingerprint, "all opens share one key")
		}
		ents, _ := os.ReadDir(filepath.Join(dir, "keys"))
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		require.ElementsMatch(t, []string{"secrets.key", "secrets.key.usage"}, names, "no temp files left")
	}
}

func TestCorruptKeyFileIsRefusedNotRegenerated(t *testing.T) {
	good := func() []byte {
		dir := t.TempDir()
		openIn(t, dir)
		b, err := os.ReadFile(filepath.Join(dir, "keys", "secrets.key"))
		require.NoError(t, err)
		return b
	}()
	short := strings.Replace(string(good), `"key": "`, `"key": "AAAA`, 1)
	tests := []struct {
		name, content, want string
		mode                os.FileMode
	}{
		{"empty", "", "not a valid key file", 0o600},
		{"not json", "hello", "not a valid key file", 0o600},
		{"truncated", string(good[:len(good)/2]), "not a valid key file", 0o600},
		{"bad key length", short, "want 32", 0o600},
		{"wrong version", strings.Replace(string(good), `"version": 1`, `"version": 7`, 1), "format version 7", 0o600},
		{"unknown primary", strings.Replace(string(good), `"primary": "k1"`, `"primary": "k9"`, 1), `primary "k9"`, 0o600},
		{"world readable", string(good), "mode is 0644", 0o644},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "keys", "secrets.key")
			require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o700))
			require.NoError(t, os.WriteFile(p, []byte(tc.content), tc.mode))
			require.NoError(t, os.Chmod(p, tc.mode))
			_, err := Open(Config{Store: NewFileStore(p)})
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
			require.Contains(t, err.Error(), p)
			require.Contains(t, err.Error(), "restore keys/secrets.key")
			require.True(t, errors.Is(err, errs.ErrFailedPrecondition))
			after, _ := os.ReadFile(p)
			require.Equal(t, tc.content, string(after), "file untouched")
		})
	}
	t.Run("unreadable (a directory)", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "keys", "secrets.key")
		require.NoError(t, os.MkdirAll(p, 0o700))
		_, err := Open(Config{Store: NewFileStore(p)})
		require.ErrorContains(t, err, "not a regular file")
	})
	t.Run("symlink", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "keys", "secrets.key")
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "elsewhere"), good, 0o600))
		require.NoError(t, os.Symlink(filepath.Join(dir, "elsewhere"), p))
		_, err := Open(Config{Store: NewFileStore(p)})
		require.ErrorContains(t, err, "not a regular file")
	})
}

func TestEncryptDecrypt(t *testing.T) {
	k := openIn(t, t.TempDir())
	env, err := k.Encrypt([]byte("bot:123"), "channels.telegram.botToken")
	require.NoError(t, err)
	require.Equal(t, "k1", env.KID)
	require.Len(t, env.Nonce, envelope.NonceSize)
	require.Len(t, env.CT, len("bot:123")+envelope.TagSize)

	pt, err := k.Decrypt(env, "channels.telegram.botToken")
	require.NoError(t, err)
	require.Equal(t, "bot:123", string(pt))

	env2, err := k.Encrypt([]byte("bot:123"), "channels.telegram.botToken")
	require.NoError(t, err)
	require.NotEqual(t, env.Nonce, env2.Nonce, "fresh nonce per seal")

	// Moved to another field: refused, and the message names the field.
	_, err = k.Decrypt(env, "gateway.auth.token")
	require.EqualError(t, err, "decrypt gateway.auth.token: ciphertext does not belong to this field or key: invalid argument")
	require.True(t, errors.Is(err, ErrWrongField))
	require.True(t, errors.Is(err, errs.ErrInvalidArgument))

	// Tampered ciphertext.
	bad := env
	bad.CT = append([]byte{}, env.CT...)
	bad.CT[0] ^= 1
	_, err = k.Decrypt(bad, "channels.telegram.botToken")
	require.ErrorIs(t, err, ErrWrongField)

	// Unknown key id.
	bad = env
	bad.KID = "k9"
	_, err = k.Decrypt(bad, "channels.telegram.botToken")
	require.ErrorContains(t, err, `decrypt channels.telegram.botToken: key id "k9" is not in the keyring (have k1)`)
	require.ErrorIs(t, err, errs.ErrNotFound)

	// Truncated envelope text is refused before any crypto.
	text, _, err := k.EncryptString([]byte("x"), "a.b")
	require.NoError(t, err)
	_, _, err = k.DecryptString(text[:len(text)/2], "a.b")
	require.ErrorContains(t, err, "decrypt a.b: envelope")
	require.ErrorIs(t, err, errs.ErrInvalidArgument)

	_, err = k.Encrypt([]byte("x"), "")
	require.ErrorContains(t, err, "aad (the field path) is empty")
}

func TestRotateRewrapRetire(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	k, err := Open(Config{Store: NewFileStore(filepath.Join(dir, "keys", "secrets.key")), Now: func() time.Time { return now }})
	require.NoError(t, err)
	old, _, err := k.EncryptString([]byte("tok"), "gateway.auth.token")
	require.NoError(t, err)

	ki, err := k.Rotate()
	require.NoError(t, err)
	require.Equal(t, "k2", ki.ID)
	require.True(t, ki.Primary)
	require.Equal(t, now, ki.Created)

	// Old envelopes still open; new ones use k2.
	pt, kid, err := k.DecryptString(old, "gateway.auth.token")
	require.NoError(t, err)
	require.Equal(t, "tok", string(pt))
	require.Equal(t, "k1", kid)
	_, kid, err = k.EncryptString([]byte("x"), "a")
	require.NoError(t, err)
	require.Equal(t, "k2", kid)

	// Rewrap moves it to k2 and reports the change; a second rewrap does not.
	re, kid, changed, err := k.Rewrap(old, "gateway.auth.token")
	require.NoError(t, err)
	require.True(t, changed)
	require.Equal(t, "k2", kid)
	re2, _, changed, err := k.Rewrap(re, "gateway.auth.token")
	require.NoError(t, err)
	require.False(t, changed)
	require.Equal(t, re, re2)
	_, _, _, err = k.Rewrap(old, "gateway.auth.password")
	require.ErrorIs(t, err, ErrWrongField)

	// The primary cannot be retired; k1 can, and then only old breaks.
	require.ErrorIs(t, k.Retire("k2"), errs.ErrFailedPrecondition)
	require.ErrorIs(t, k.Retire("k7"), errs.ErrNotFound)
	require.NoError(t, k.Retire("k1"))
	// The ring as it was is kept next to it, private.
	bak, err := os.Stat(filepath.Join(dir, "keys", "secrets.key"+RetiredBackupSuffix))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), bak.Mode().Perm())
	b, err := os.ReadFile(filepath.Join(dir, "keys", "secrets.key"+RetiredBackupSuffix))
	require.NoError(t, err)
	restored := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(restored, "keys"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(restored, "keys", "secrets.key"), b, 0o600))
	require.Len(t, openIn(t, restored).Status().Keys, 2, "the backup still holds k1")
	_, _, err = k.DecryptString(old, "gateway.auth.token")
	require.ErrorIs(t, err, errs.ErrNotFound)
	pt, _, err = k.DecryptString(re, "gateway.auth.token")
	require.NoError(t, err)
	require.Equal(t, "tok", string(pt))

	// Persisted: a fresh open sees k2 only.
	k2 := openIn(t, dir)
	st := k2.Status()
	require.Equal(t, "k2", st.Primary)
	require.Len(t, st.Keys, 1)
	require.Equal(t, filepath.Join(dir, "keys", "secrets.key"), st.Location)

	// A rotate after retire does not reuse an id.
	ki, err = k2.Rotate()
	require.NoError(t, err)
	require.Equal(t, "k3", ki.ID)
}

func TestStatusNeverShowsKeyBytes(t *testing.T) {
	dir := t.TempDir()
	k := openIn(t, dir)
	_, err := k.Rotate()
	require.NoError(t, err)
	raw, err := os.ReadFile(filepath.Join(dir, "keys", "secrets.key"))
	require.NoError(t, err)
	keys, err := parseKeyFile(raw)
	require.NoError(t, err)
	st := k.Status()
	require.Len(t, st.Keys, 2)
	for i, ki := range st.Keys {
		require.Len(t, ki.Fingerprint, 16)
		for _, key := range keys.Keys {
			require.NotContains(t, ki.Fingerprint, base64.StdEncoding.EncodeToString(key.Material)[:8])
		}
		require.Equal(t, keys.Keys[i].ID, ki.ID)
	}
	require.NotEqual(t, st.Keys[0].Fingerprint, st.Keys[1].Fingerprint)
}

func BenchmarkSealOpen(b *testing.B) {
	k := openIn(b, b.TempDir())
	pt := []byte("xoxb-123456789012-1234567890123-abcdefghijklmnopqrstuvwx")
	b.ReportAllocs()
	for b.Loop() {
		text, _, err := k.EncryptString(pt, "channels.slack.botToken")
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := k.DecryptString(text, "channels.slack.botToken"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSealOpenParallel(b *testing.B) {
	k := openIn(b, b.TempDir())
	pt := []byte("xoxb-123456789012-1234567890123-abcdefghijklmnopqrstuvwx")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			env, err := k.Encrypt(pt, "channels.slack.botToken")
			if err != nil {
				b.Error(err)
				return
			}
			if _, err := k.Decrypt(env, "channels.slack.botToken"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
