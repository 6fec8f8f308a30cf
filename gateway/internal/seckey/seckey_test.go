package seckey

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/services/errs"
)

// aeadSealer seals like secretsd: AES-256-GCM with the AAD bound, so an
// envelope opens only under its key and for its AAD.
type aeadSealer struct {
	key  []byte
	down bool
}

func newSealer(t *testing.T) *aeadSealer {
	k := make([]byte, 32)
	_, err := rand.Read(k)
	require.NoError(t, err)
	return &aeadSealer{key: k}
}

func (s *aeadSealer) gcm() cipher.AEAD {
	b, _ := aes.NewCipher(s.key)
	g, _ := cipher.NewGCMWithRandomNonce(b)
	return g
}

func (s *aeadSealer) Encrypt(_ context.Context, pt []byte, aad string) (string, error) {
	if s.down {
		return "", fmt.Errorf("secretsd is unreachable: %w", errs.ErrUnavailable)
	}
	return base64.StdEncoding.EncodeToString(s.gcm().Seal(nil, nil, pt, []byte(aad))), nil
}

func (s *aeadSealer) Decrypt(_ context.Context, env, aad string) ([]byte, error) {
	if s.down {
		return nil, fmt.Errorf("secretsd is unreachable: %w", errs.ErrUnavailable)
	}
	ct, err := base64.StdEncoding.DecodeString(env)
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", errs.ErrInvalidArgument)
	}
	pt, err := s.gcm().Open(nil, nil, ct, []byte(aad))
	if err != nil {
		return nil, fmt.Errorf("envelope does not open: %w", errs.ErrInvalidArgument)
	}
	return pt, nil
}

func TestCreateUnsealReseal(t *testing.T) {
	ctx, dir := context.Background(), t.TempDir()
	s1 := newSealer(t)
	st := New(dir, s1)
	key, created, err := st.LoadOrCreate(ctx)
	require.NoError(t, err)
	require.True(t, created)
	require.Len(t, key, 32)

	fi, err := os.Stat(filepath.Join(dir, FileName))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	raw, err := os.ReadFile(st.Path())
	require.NoError(t, err)
	require.False(t, bytes.Contains(raw, key), "the file holds the envelope, never the key")

	again, created, err := st.LoadOrCreate(ctx)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, key, again, "one key for the log's life")

	// After a keyring import the same key is sealed under the new keyring.
	s2 := newSealer(t)
	require.NoError(t, New(dir, s2).Reseal(ctx, key))
	got, err := New(dir, s2).Unseal(ctx)
	require.NoError(t, err)
	require.Equal(t, key, got)
	_, err = New(dir, s1).Unseal(ctx)
	require.Error(t, err, "the old keyring no longer opens it")
}

func TestFailuresNeverReplaceTheKey(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		prepare func(t *testing.T, dir string, s *aeadSealer)
		want    string
		is      error
	}{
		{"secretsd down", func(t *testing.T, dir string, s *aeadSealer) { s.down = true }, "unreachable", errs.ErrUnavailable},
		{"another keyring", func(t *testing.T, dir string, s *aeadSealer) { s.key[0] ^= 1 }, "move", errs.ErrInvalidArgument},
		{"sealed for another place", func(t *testing.T, dir string, s *aeadSealer) {
			env, err := s.Encrypt(ctx, make([]byte, 32), "gateway.auth.token")
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dir, FileName), []byte(env), 0o600))
		}, "does not open", errs.ErrInvalidArgument},
		{"wrong length inside", func(t *testing.T, dir string, s *aeadSealer) {
			env, err := s.Encrypt(ctx, make([]byte, 16), AAD)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dir, FileName), []byte(env), 0o600))
		}, "16 bytes after unsealing, want 32", nil},
		{"oversized file", func(t *testing.T, dir string, s *aeadSealer) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, FileName), bytes.Repeat([]byte("a"), maxEnvelope+1), 0o600))
		}, "over 65536 bytes", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, s := t.TempDir(), newSealer(t)
			st := New(dir, s)
			_, _, err := st.LoadOrCreate(ctx)
			require.NoError(t, err)
			tc.prepare(t, dir, s)
			before, err := os.ReadFile(st.Path())
			require.NoError(t, err)
			_, _, err = st.LoadOrCreate(ctx)
			require.ErrorContains(t, err, tc.want)
			require.Contains(t, err.Error(), st.Path())
			if tc.is != nil {
				require.True(t, errors.Is(err, tc.is), "%v", err)
			}
			after, err := os.ReadFile(st.Path())
			require.NoError(t, err)
			require.Equal(t, before, after, "a failure never makes a new key over the old")
		})
	}
	require.ErrorContains(t, New(t.TempDir(), newSealer(t)).Reseal(ctx, []byte("short")), "want 32")
}

// Rewrap moves the envelope to the new keyring through the rewrap func
// alone (secretsd's Rewrap), and leaves the file alone when nothing changed.
func TestRewrap(t *testing.T) {
	ctx, dir := context.Background(), t.TempDir()
	old, next := newSealer(t), newSealer(t)
	key, _, err := New(dir, old).LoadOrCreate(ctx)
	require.NoError(t, err)
	rewrap := func(ctx context.Context, env, aad string) (string, bool, error) {
		pt, err := old.Decrypt(ctx, env, aad)
		if err != nil {
			return "", false, err
		}
		out, err := next.Encrypt(ctx, pt, aad)
		return out, true, err
	}
	changed, err := New(dir, next).Rewrap(ctx, rewrap)
	require.NoError(t, err)
	require.True(t, changed)
	got, err := New(dir, next).Unseal(ctx)
	require.NoError(t, err)
	require.Equal(t, key, got)

	before, err := os.ReadFile(filepath.Join(dir, FileName))
	require.NoError(t, err)
	changed, err = New(dir, next).Rewrap(ctx, func(_ context.Context, env, _ string) (string, bool, error) { return env, false, nil })
	require.NoError(t, err)
	require.False(t, changed)
	_, err = New(dir, next).Rewrap(ctx, func(context.Context, string, string) (string, bool, error) {
		return "", false, fmt.Errorf("secretsd is unreachable: %w", errs.ErrUnavailable)
	})
	require.ErrorIs(t, err, errs.ErrUnavailable)
	after, err := os.ReadFile(filepath.Join(dir, FileName))
	require.NoError(t, err)
	require.Equal(t, before, after)
	_, err = New(t.TempDir(), next).Rewrap(ctx, rewrap)
	require.ErrorIs(t, err, ErrNoKey)
}
