package keyring

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"filippo.io/age/armor"
	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/services/errs"
)

const testPass = "correct horse battery staple"

// openWF opens the keyring in dir with a cheap scrypt cost for tests.
func openWF(t testing.TB, dir string) *Keyring {
	t.Helper()
	k, err := Open(Config{Store: NewFileStore(filepath.Join(dir, "keys", "secrets.key")), ExportWorkFactor: 10})
	require.NoError(t, err)
	return k
}

// sealAge seals arbitrary bytes the way Export does, to build bad exports.
func sealAge(t testing.TB, pass string, plain []byte) []byte {
	t.Helper()
	r, err := age.NewScryptRecipient(pass)
	require.NoError(t, err)
	r.SetWorkFactor(10)
	var out bytes.Buffer
	aw := armor.NewWriter(&out)
	w, err := age.Encrypt(aw, r)
	require.NoError(t, err)
	_, err = w.Write(plain)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	require.NoError(t, aw.Close())
	return out.Bytes()
}

func TestExportImportRoundTrip(t *testing.T) {
	a := openWF(t, t.TempDir())
	_, err := a.Rotate() // two keys: the whole ring travels, not just the primary
	require.NoError(t, err)
	env, _, err := a.EncryptString([]byte("bot-token"), "channels.telegram.botToken")
	require.NoError(t, err)
	sealed, st, err := a.Export([]byte(testPass))
	require.NoError(t, err)
	require.Equal(t, "k2", st.Primary)
	require.True(t, bytes.HasPrefix(sealed, []byte(armor.Header)))
	for _, key := range a.keys.Keys {
		require.NotContains(t, string(sealed), string(key.Material))
	}

	dirB := t.TempDir()
	b := openWF(t, dirB)
	got, backup, err := b.Import(sealed, []byte(testPass))
	require.NoError(t, err)
	require.Equal(t, a.Status().Keys, got.Keys, "same ids, times and fingerprints")
	require.Equal(t, "k2", got.Primary)

	// In memory and on disk: b and a restarted b both open a's envelope.
	pt, _, err := b.DecryptString(env, "channels.telegram.botToken")
	require.NoError(t, err)
	require.Equal(t, "bot-token", string(pt))
	pt, _, err = openWF(t, dirB).DecryptString(env, "channels.telegram.botToken")
	require.NoError(t, err)
	require.Equal(t, "bot-token", string(pt))

	// The replaced key file is kept, private, and is b's old ring.
	fi, err := os.Stat(backup)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	old, err := parseKeyFileAt(backup)
	require.NoError(t, err)
	require.Equal(t, "k1", old.Primary)
	require.Len(t, old.Keys, 1)
}

func parseKeyFileAt(p string) (Keys, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return Keys{}, err
	}
	return parseKeyFile(b)
}

func TestImportRejectsBadExports(t *testing.T) {
	a := openWF(t, t.TempDir())
	sealed, _, err := a.Export([]byte(testPass))
	require.NoError(t, err)

	// Flip one character inside the armored payload (after the header and
	// stanza lines), so the age stream's authentication must catch it.
	lines := strings.Split(string(sealed), "\n")
	mid := len(lines) - 3
	require.Greater(t, mid, 1)
	flip := []byte(lines[mid])
	if flip[5] == 'A' {
		flip[5] = 'B'
	} else {
		flip[5] = 'A'
	}
	lines[mid] = string(flip)
	tampered := []byte(strings.Join(lines, "\n"))

	badJSON := sealAge(t, testPass, []byte(`{"version":1,"primary":"k1","keys":[{"id":"k1","created":"2026-01-01T00:00:00Z","key":"c2hvcnQ="}]}`))
	badID := sealAge(t, testPass, []byte(`{"version":1,"primary":"x","keys":[{"id":"x","created":"2026-01-01T00:00:00Z","key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}]}`))
	tests := []struct {
		name   string
		sealed []byte
		pass   string
		msg    string
	}{
		{"wrong passphrase", sealed, "a different passphrase", "passphrase does not open"},
		{"tampered ciphertext", tampered, testPass, "damaged or was altered"},
		// A raw key file given by mistake: refused without echoing its bytes.
		{"not age", []byte(`{"version":1,"keys":[{"key":"c2VjcmV0LWtleS1ieXRlcw=="}]}`), testPass, "not a readable key export"},
		{"empty", nil, testPass, "empty"},
		{"empty passphrase", sealed, "", "passphrase is empty"},
		{"short key inside", badJSON, testPass, "key k1: 5 bytes, want 32"},
		{"bad key id inside", badID, testPass, `id "x" is not of the form k<N>`},
		{"too large", bytes.Repeat([]byte("a"), maxExport+1), testPass, "limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			b := openWF(t, dir)
			before, err := os.ReadFile(filepath.Join(dir, "keys", "secrets.key"))
			require.NoError(t, err)
			_, _, err = b.Import(tc.sealed, []byte(tc.pass))
			require.ErrorIs(t, err, errs.ErrInvalidArgument)
			require.Contains(t, err.Error(), tc.msg)
			require.NotContains(t, err.Error(), testPass)
			require.NotContains(t, err.Error(), "c2VjcmV0")
			after, err := os.ReadFile(filepath.Join(dir, "keys", "secrets.key"))
			require.NoError(t, err)
			require.Equal(t, before, after, "a refused import leaves the key file alone")
			require.Equal(t, "k1", b.Primary())
		})
	}
}

func TestImportOnlyIntoAnUnusedKeyring(t *testing.T) {
	src := openWF(t, t.TempDir())
	sealed, _, err := src.Export([]byte(testPass))
	require.NoError(t, err)

	tests := []struct {
		name    string
		prepare func(t *testing.T, k *Keyring, dir string)
		refused bool
		msg     string
	}{
		{"fresh", func(*testing.T, *Keyring, string) {}, false, ""},
		{"internal-only encryptions", func(t *testing.T, k *Keyring, _ string) {
			env, _, err := k.EncryptString([]byte("hmac"), "internal/seclog/hmac-key")
			require.NoError(t, err)
			_, _, err = k.DecryptString(env, "internal/seclog/hmac-key")
			require.NoError(t, err)
		}, false, ""},
		{"after a user encryption", func(t *testing.T, k *Keyring, _ string) {
			_, _, err := k.EncryptString([]byte("v"), "gateway.auth.token")
			require.NoError(t, err)
		}, true, "first: gateway.auth.token"},
		{"after a user encryption, restarted", func(t *testing.T, k *Keyring, dir string) {
			_, _, err := k.EncryptString([]byte("v"), "channels.telegram.botToken")
			require.NoError(t, err)
			*k = *openWF(t, dir) //nolint:govet // a fresh process: only the durable record remains
		}, true, "first: channels.telegram.botToken"},
		{"after a user rewrap", func(t *testing.T, k *Keyring, dir string) {
			// A ciphertext made elsewhere under this ring (a copied file).
			env, _, err := openWF(t, dir).EncryptString([]byte("v"), "agents.x")
			require.NoError(t, err)
			_, _, _, err = k.Rewrap(env, "agents.x")
			require.NoError(t, err)
		}, true, "first: agents.x"},
		{"no usage record (older keyring)", func(t *testing.T, _ *Keyring, dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, "keys", "secrets.key.usage")))
		}, true, "no usage record"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			k := openWF(t, dir)
			tc.prepare(t, k, dir)
			_, _, err := k.Import(sealed, []byte(testPass))
			if !tc.refused {
				require.NoError(t, err)
				require.Equal(t, src.Status().Keys, k.Status().Keys)
				return
			}
			require.ErrorIs(t, err, errs.ErrFailedPrecondition)
			require.Contains(t, err.Error(), tc.msg)
			require.Contains(t, err.Error(), "make purge")
			require.NotEqual(t, src.Status().Keys, k.Status().Keys, "keyring unchanged")
		})
	}
}

func TestExportPassphraseRules(t *testing.T) {
	k := openWF(t, t.TempDir())
	tests := []struct {
		name string
		pass string
		msg  string
	}{
		{"empty", "", "passphrase is empty"},
		{"short", "elevenchars", "at least 12 characters"},
		{"too long", strings.Repeat("p", MaxPassphrase+1), "limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := k.Export([]byte(tc.pass))
			require.ErrorIs(t, err, errs.ErrInvalidArgument)
			require.Contains(t, err.Error(), tc.msg)
			require.Nil(t, out)
		})
	}
	_, _, err := k.Export([]byte("twelve chars"))
	require.NoError(t, err)
}

// failingUsage is a FileStore whose usage record cannot be written.
type failingUsage struct{ *FileStore }

func (failingUsage) SetUsage(Usage) error { return errors.New("disk full") }

// The first user encryption is recorded before the ciphertext is returned,
// and a failure to record it returns no ciphertext (fail closed); internal
// paths never need the record.
func TestFirstUseIsDurableBeforeCiphertext(t *testing.T) {
	dir := t.TempDir()
	k := openWF(t, dir)
	u, err := k.Usage()
	require.NoError(t, err)
	require.Equal(t, Usage{Known: true}, u)
	_, _, err = k.EncryptString([]byte("v"), "gateway.auth.token")
	require.NoError(t, err)
	u, err = NewFileStore(filepath.Join(dir, "keys", "secrets.key")).Usage()
	require.NoError(t, err)
	require.True(t, u.Used)
	require.Equal(t, "gateway.auth.token", u.First)

	dir2 := t.TempDir()
	openWF(t, dir2) // creates the ring and its "unused" record
	f, err := Open(Config{Store: failingUsage{NewFileStore(filepath.Join(dir2, "keys", "secrets.key"))}})
	require.NoError(t, err)
	env, _, err := f.EncryptString([]byte("v"), "gateway.auth.token")
	require.ErrorContains(t, err, "record first use")
	require.Empty(t, env)
	_, _, err = f.EncryptString([]byte("v"), "internal/seclog/hmac-key")
	require.NoError(t, err)
}

// A scrypt cost above what an import accepts (or below 1) is refused at
// Open, instead of panicking inside age at the first export.
func TestExportWorkFactorBounds(t *testing.T) {
	for _, wf := range []int{-1, DefaultExportWorkFactor + 1, 31} {
		_, err := Open(Config{Store: NewFileStore(filepath.Join(t.TempDir(), "keys", "secrets.key")), ExportWorkFactor: wf})
		require.ErrorContains(t, err, "ExportWorkFactor", "wf %d", wf)
	}
}
