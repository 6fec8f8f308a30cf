// Package seckey keeps the security log's HMAC key: 32 random bytes the
// gateway makes once, has secretsd seal (secrets.v1 Encrypt, AAD AAD) and
// stores as the envelope in <state>/logs/security.key. The gateway unseals
// it once at start, so the log costs no RPC per line, and whoever can write
// the log but cannot use secretsd cannot forge it. Reseal stores the same
// key sealed under secretsd's current keyring (after a key import).
package seckey

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/moltbot/moltbot-secure/services/atomicfile"
	"github.com/moltbot/moltbot-secure/services/errs"
	"github.com/moltbot/moltbot-secure/services/seclog"
)

// AAD binds the envelope to this use. The "internal/" prefix marks it as
// gateway data that a keyring import may re-seal.
const AAD = "internal/seclog/hmac-key"

// FileName is the envelope's file under the log dir.
const FileName = "security.key"

// maxEnvelope bounds what is read from the file (an envelope is < 1 KiB).
const maxEnvelope = 64 << 10

// Sealer is what the key needs from secretsd (configstore.SecretsClient).
type Sealer interface {
	Encrypt(ctx context.Context, plaintext []byte, aad string) (string, error)
	Decrypt(ctx context.Context, envelope, aad string) ([]byte, error)
}

// Store is the sealed key file.
type Store struct {
	path string
	s    Sealer
	rand io.Reader
}

// New returns the store for the key file in logDir.
func New(logDir string, s Sealer) *Store {
	return &Store{path: filepath.Join(logDir, FileName), s: s, rand: rand.Reader}
}

// Path is the key file.
func (st *Store) Path() string { return st.path }

// ErrNoKey: the key file does not exist yet.
var ErrNoKey = errors.New("security log key not created yet")

// read returns the envelope text from the file, bounded.
func (st *Store) read() (string, error) {
	f, err := os.Open(st.path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%s: %w", st.path, ErrNoKey)
	}
	if err != nil {
		return "", fmt.Errorf("read security log key %s: %w", st.path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxEnvelope+1))
	if err != nil {
		return "", fmt.Errorf("read security log key %s: %w", st.path, err)
	}
	if len(b) > maxEnvelope {
		return "", fmt.Errorf("security log key %s: over %d bytes, not an envelope the gateway wrote; move it aside and restart (a new key starts a new log)", st.path, maxEnvelope)
	}
	return strings.TrimSpace(string(b)), nil
}

// Unseal reads the envelope and has secretsd open it.
func (st *Store) Unseal(ctx context.Context) ([]byte, error) {
	env, err := st.read()
	if err != nil {
		return nil, err
	}
	key, err := st.s.Decrypt(ctx, env, AAD)
	if err != nil {
		return nil, fmt.Errorf("unseal security log key %s through secretsd: %w", st.path, err)
	}
	if len(key) != seclog.KeySize {
		return nil, fmt.Errorf("security log key %s: %d bytes after unsealing, want %d", st.path, len(key), seclog.KeySize)
	}
	return key, nil
}

// Reseal has secretsd seal key under its current keyring and replaces the
// file atomically (0600): the old envelope stays until the new one is in.
func (st *Store) Reseal(ctx context.Context, key []byte) error {
	if len(key) != seclog.KeySize {
		return fmt.Errorf("security log key: %d bytes, want %d", len(key), seclog.KeySize)
	}
	env, err := st.s.Encrypt(ctx, key, AAD)
	if err != nil {
		return fmt.Errorf("seal security log key through secretsd: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(st.path), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(st.path), err)
	}
	if err := atomicfile.WriteFile(st.path, []byte(env+"\n"), 0o600); err != nil {
		return fmt.Errorf("write security log key %s: %w", st.path, err)
	}
	return nil
}

// Rewrap re-seals the envelope under secretsd's primary key with rewrap
// (secretsd's Rewrap: the key never leaves it) and replaces the file
// atomically when it changed. configstore's RotateKey calls it.
func (st *Store) Rewrap(ctx context.Context, rewrap func(ctx context.Context, envelope, aad string) (string, bool, error)) (bool, error) {
	env, err := st.read()
	if err != nil {
		return false, err
	}
	out, changed, err := rewrap(ctx, env, AAD)
	if err != nil {
		return false, fmt.Errorf("rewrap security log key %s: %w", st.path, err)
	}
	if !changed {
		return false, nil
	}
	if err := atomicfile.WriteFile(st.path, []byte(out+"\n"), 0o600); err != nil {
		return false, fmt.Errorf("write security log key %s: %w", st.path, err)
	}
	return true, nil
}

// LoadOrCreate unseals the key, or on first start makes one and seals it.
// Any other failure (secretsd refuses, the envelope is damaged) is returned:
// the gateway fails closed rather than start a log it cannot key.
func (st *Store) LoadOrCreate(ctx context.Context) (key []byte, created bool, err error) {
	key, err = st.Unseal(ctx)
	switch {
	case err == nil:
		return key, false, nil
	case errors.Is(err, errs.ErrUnavailable):
		return nil, false, err
	case !errors.Is(err, ErrNoKey):
		return nil, false, fmt.Errorf("%w (if the key is lost for good, e.g. secretsd's keyring was replaced without `security key import`, move %s aside and restart: a new key starts a new log and the old one is archived as unverified)", err, st.path)
	}
	key = make([]byte, seclog.KeySize)
	if _, err := io.ReadFull(st.rand, key); err != nil {
		return nil, false, fmt.Errorf("make security log key: %w", err)
	}
	if err := st.Reseal(ctx, key); err != nil {
		return nil, false, err
	}
	return key, true, nil
}
