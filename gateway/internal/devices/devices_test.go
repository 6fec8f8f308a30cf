package devices

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/services/auth"
)

func newKey(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	return pub, priv
}

func TestStoreLifecycleOnDisk(t *testing.T) {
	path := filepath.Join(t.TempDir(), File)
	s, err := Open(path)
	require.NoError(t, err)
	pub, _ := newKey(t)
	d, err := s.Register(pub, "Chromium\x1b[31m on Linux", "http://127.0.0.1:18793")
	require.NoError(t, err)
	require.Equal(t, StatePending, d.State)
	require.Equal(t, Fingerprint(pub), d.Fingerprint)
	require.Equal(t, "Chromium[31m on Linux", d.Name, "control characters are dropped from the label")
	require.Len(t, d.Fingerprint, 24)

	again, err := s.Register(pub, "other", "")
	require.NoError(t, err)
	require.Equal(t, d.CreatedAt, again.CreatedAt, "registering the same key again is the same device")

	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	_, err = s.Approve(d.Fingerprint[:9], "admin")
	require.ErrorIs(t, err, ErrBadRole)
	a, err := s.Approve(d.Fingerprint[:9], auth.RoleClient)
	require.NoError(t, err)
	require.Equal(t, StateApproved, a.State)
	require.Equal(t, auth.RoleClient, a.Role)
	_, err = s.Approve(d.Fingerprint, "")
	require.ErrorIs(t, err, ErrNotPending)
	_, err = s.Reject(d.Fingerprint)
	require.ErrorIs(t, err, ErrNotPending)

	// A fresh store reads the same state back.
	s2, err := Open(path)
	require.NoError(t, err)
	got, ok := s2.Get(d.Fingerprint)
	require.True(t, ok)
	require.Equal(t, StateApproved, got.State)
	require.Equal(t, auth.RoleClient, got.Role)

	var removed []string
	s2.OnRemoved(func(d Device) { removed = append(removed, d.Fingerprint) })
	_, err = s2.Revoke(d.Fingerprint)
	require.NoError(t, err)
	require.Equal(t, []string{d.Fingerprint}, removed)
	require.Empty(t, s2.List())
	_, err = s2.Revoke(d.Fingerprint)
	require.ErrorIs(t, err, ErrNotFound)
	_, err = os.Stat(path + ".bak")
	require.NoError(t, err, "every write keeps a backup")
}

func TestStoreBoundsPending(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), File))
	require.NoError(t, err)
	var first Device
	for i := range MaxPending {
		pub, _ := newKey(t)
		d, err := s.Register(pub, "", "")
		require.NoError(t, err)
		if i == 0 {
			first = d
		}
	}
	pub, _ := newKey(t)
	_, err = s.Register(pub, "", "")
	require.ErrorIs(t, err, ErrTooMany)
	_, err = s.Reject(first.Fingerprint)
	require.NoError(t, err)
	_, err = s.Register(pub, "", "")
	require.NoError(t, err, "a rejected request frees a place")

	_, err = s.Register([]byte("short"), "", "")
	require.ErrorIs(t, err, ErrBadKey)
	_, err = s.Approve("ab", "")
	require.ErrorIs(t, err, ErrNotFound, "a too short prefix matches nothing")
}

func TestOpenRefusesMalformedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), File)
	require.NoError(t, os.WriteFile(path, []byte("{not json"), 0o600))
	_, err := Open(path)
	require.ErrorContains(t, err, path)
	require.ErrorContains(t, err, ".bak")

	require.NoError(t, os.WriteFile(path, []byte(`{"version":1,"devices":[{"fingerprint":"0000-0000","publicKey":"AAAA","state":"approved"}]}`), 0o600))
	_, err = Open(path)
	require.ErrorContains(t, err, "devices[0] is malformed")
}

func TestSessionHandshake(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), File))
	require.NoError(t, err)
	sess := NewSessions(s)
	pub, priv := newKey(t)
	d, err := s.Register(pub, "", "")
	require.NoError(t, err)
	const origin = "http://127.0.0.1:18793"
	sign := func(origin, nonce string) []byte {
		return ed25519.Sign(priv, SignedMessage(origin, d.Fingerprint, nonce))
	}

	// Pending: the signature is good but the device is not approved.
	n, err := sess.Challenge(d.Fingerprint, origin)
	require.NoError(t, err)
	_, _, err = sess.Open(d.Fingerprint, origin, n, sign(origin, n), false)
	require.ErrorIs(t, err, ErrPending)
	_, _, err = sess.Open(d.Fingerprint, origin, n, sign(origin, n), false)
	require.ErrorIs(t, err, ErrBadChallenge, "a nonce is single use even when refused")

	// dangerouslyDisableDeviceAuth: a pending device gets in as the owner.
	n, _ = sess.Challenge(d.Fingerprint, origin)
	_, so, err := sess.Open(d.Fingerprint, origin, n, sign(origin, n), true)
	require.NoError(t, err)
	require.Equal(t, auth.RoleOwner, so.Role)

	_, err = s.Approve(d.Fingerprint, "")
	require.NoError(t, err)

	// A signature bound to another origin, or by another key, fails.
	n, _ = sess.Challenge(d.Fingerprint, origin)
	_, _, err = sess.Open(d.Fingerprint, origin, n, sign("https://evil.example", n), false)
	require.ErrorIs(t, err, ErrBadSignature)
	n, _ = sess.Challenge(d.Fingerprint, origin)
	_, _, err = sess.Open(d.Fingerprint, "https://evil.example", n, sign("https://evil.example", n), false)
	require.ErrorIs(t, err, ErrBadChallenge, "the nonce is bound to the origin it was issued for")
	_, other := newKey(t)
	n, _ = sess.Challenge(d.Fingerprint, origin)
	_, _, err = sess.Open(d.Fingerprint, origin, n, ed25519.Sign(other, SignedMessage(origin, d.Fingerprint, n)), false)
	require.ErrorIs(t, err, ErrBadSignature)
	_, err = sess.Challenge("0000-0000-0000-0000-0000", origin)
	require.ErrorIs(t, err, ErrNotFound)

	// The good path; the credential works only from its origin.
	n, _ = sess.Challenge(d.Fingerprint, origin)
	tok, so, err := sess.Open(d.Fingerprint, origin, n, sign(origin, n), false)
	require.NoError(t, err)
	require.Equal(t, auth.RoleOwner, so.Role)
	got, ok := sess.Lookup(tok, origin)
	require.True(t, ok)
	require.Equal(t, d.Fingerprint, got.Device)
	_, ok = sess.Lookup(tok, "http://localhost:18793")
	require.False(t, ok)
	_, ok = sess.Lookup(tok+"x", origin)
	require.False(t, ok)

	// Revoking ends the session and its context (streams) at once.
	_, err = s.Revoke(d.Fingerprint)
	require.NoError(t, err)
	select {
	case <-got.Ctx.Done():
	case <-time.After(time.Second):
		t.Fatal("session context not cancelled by revoke")
	}
	_, ok = sess.Lookup(tok, origin)
	require.False(t, ok)
}

func TestSessionExpires(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), File))
	require.NoError(t, err)
	sess := NewSessions(s)
	now := time.Now()
	sess.now = func() time.Time { return now }
	pub, priv := newKey(t)
	d, _ := s.Register(pub, "", "")
	_, _ = s.Approve(d.Fingerprint, "")
	n, _ := sess.Challenge(d.Fingerprint, "o")
	now = now.Add(NonceTTL + time.Second)
	_, _, err = sess.Open(d.Fingerprint, "o", n, ed25519.Sign(priv, SignedMessage("o", d.Fingerprint, n)), false)
	require.ErrorIs(t, err, ErrBadChallenge, "an expired nonce is refused")
	n, _ = sess.Challenge(d.Fingerprint, "o")
	tok, so, err := sess.Open(d.Fingerprint, "o", n, ed25519.Sign(priv, SignedMessage("o", d.Fingerprint, n)), false)
	require.NoError(t, err)
	now = now.Add(SessionTTL + time.Second)
	_, ok := sess.Lookup(tok, "o")
	require.False(t, ok)
	require.Error(t, so.Ctx.Err())
}
