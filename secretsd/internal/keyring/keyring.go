// Package keyring is secretsd's domain logic: a versioned set of random
// AES-256 keys (one primary), sealing values into envelopes bound to their
// field path by the GCM additional data. It never imports grpc; errors carry
// the classes of services/errs and never key bytes or plaintext.
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moltbot/moltbot-secure/services/envelope"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// ErrWrongField is the class of an authentication failure: the ciphertext was
// sealed for another field (AAD) or under another key with the same id, or it
// was altered. It is wrapped together with errs.ErrInvalidArgument.
var ErrWrongField = errors.New("ciphertext does not belong to this field or key")

// Config holds the keyring's dependencies.
type Config struct {
	Store KeyStore
	// Rand is the source of key material; nil means crypto/rand.Reader.
	// Nonces always come from crypto/rand inside cipher.NewGCMWithRandomNonce.
	Rand io.Reader
	// Now is the clock for created-at; nil means time.Now.
	Now func() time.Time
	// ExportWorkFactor is the scrypt work factor (log2 N) sealing an export;
	// 0 means DefaultExportWorkFactor. Tests lower it.
	ExportWorkFactor int
}

// Keyring holds the loaded keys and one AEAD per key.
type Keyring struct {
	store KeyStore
	rand  io.Reader
	now   func() time.Time
	wf    int

	// usedMu serialises the first user-secret mark against Import; used is
	// its fast path (true once the keyring must be kept).
	usedMu sync.Mutex
	used   atomic.Bool
	// scryptMu runs one export/import at a time: each scrypt takes about
	// 256 MiB at the default cost.
	scryptMu sync.Mutex

	mu    sync.RWMutex
	keys  Keys
	aeads map[string]cipher.AEAD
}

// KeyInfo describes a key without its material.
type KeyInfo struct {
	ID          string
	Created     time.Time
	Fingerprint string
	Primary     bool
}

// Status is the keyring as shown to an operator.
type Status struct {
	Keys     []KeyInfo
	Primary  string
	Location string
}

// Open loads the keyring, creating it with one fresh key when none exists.
// A key file that exists but cannot be used is an error, never replaced.
// When two processes create at once, the loser loads the winner's key.
func Open(cfg Config) (*Keyring, error) {
	if cfg.Store == nil {
		return nil, errors.New("keyring: Config.Store is nil")
	}
	k := &Keyring{store: cfg.Store, rand: cfg.Rand, now: cfg.Now, wf: cfg.ExportWorkFactor}
	if k.wf == 0 {
		k.wf = DefaultExportWorkFactor
	}
	if k.wf < 1 || k.wf > DefaultExportWorkFactor {
		return nil, fmt.Errorf("keyring: ExportWorkFactor %d is outside 1..%d", k.wf, DefaultExportWorkFactor)
	}
	if k.rand == nil {
		k.rand = rand.Reader
	}
	if k.now == nil {
		k.now = time.Now
	}
	keys, err := k.store.Load()
	if errors.Is(err, ErrNoKeyring) {
		first, gerr := k.newKey("k1")
		if gerr != nil {
			return nil, gerr
		}
		cerr := k.store.Create(Keys{Primary: first.ID, Keys: []Key{first}})
		if cerr != nil && !errors.Is(cerr, errs.ErrAlreadyExists) {
			return nil, cerr
		}
		if cerr == nil {
			// Only the process that created the keyring may say it is
			// unused; a crash before this line leaves it "unknown" = used.
			if err := k.store.SetUsage(Usage{Known: true}); err != nil {
				return nil, err
			}
		}
		keys, err = k.store.Load()
	}
	if err != nil {
		return nil, err
	}
	if err := k.install(keys); err != nil {
		return nil, err
	}
	u, err := k.store.Usage()
	if err != nil {
		return nil, err
	}
	k.used.Store(u.InUse())
	return k, nil
}

func (k *Keyring) newKey(id string) (Key, error) {
	mat := make([]byte, KeySize)
	if _, err := io.ReadFull(k.rand, mat); err != nil {
		return Key{}, fmt.Errorf("generate key: %w", err)
	}
	return Key{ID: id, Created: k.now().UTC(), Material: mat}, nil
}

func (k *Keyring) install(keys Keys) error {
	aeads := make(map[string]cipher.AEAD, len(keys.Keys))
	for _, key := range keys.Keys {
		block, err := aes.NewCipher(key.Material)
		if err != nil {
			return fmt.Errorf("key %s: %w", key.ID, err)
		}
		a, err := cipher.NewGCMWithRandomNonce(block)
		if err != nil {
			return fmt.Errorf("key %s: %w", key.ID, err)
		}
		aeads[key.ID] = a
	}
	k.mu.Lock()
	k.keys, k.aeads = keys, aeads
	k.mu.Unlock()
	return nil
}

func checkAAD(aad string) error {
	if aad == "" {
		return fmt.Errorf("aad (the field path) is empty; every secret is bound to its field: %w", errs.ErrInvalidArgument)
	}
	return nil
}

// Encrypt seals plaintext under the primary key, bound to aad.
func (k *Keyring) Encrypt(plaintext []byte, aad string) (envelope.Envelope, error) {
	if err := checkAAD(aad); err != nil {
		return envelope.Envelope{}, err
	}
	// Durable before any ciphertext leaves: from now on Import refuses.
	if err := k.noteUse(aad); err != nil {
		return envelope.Envelope{}, err
	}
	k.mu.RLock()
	kid := k.keys.Primary
	a := k.aeads[kid]
	k.mu.RUnlock()
	// The random-nonce AEAD prefixes the 12-byte nonce to its output.
	out := a.Seal(nil, nil, plaintext, []byte(aad))
	return envelope.Envelope{KID: kid, Nonce: out[:envelope.NonceSize], CT: out[envelope.NonceSize:]}, nil
}

// Decrypt opens env if it was sealed for aad under a key in the ring.
func (k *Keyring) Decrypt(env envelope.Envelope, aad string) ([]byte, error) {
	if err := checkAAD(aad); err != nil {
		return nil, err
	}
	k.mu.RLock()
	a, ok := k.aeads[env.KID]
	ids := k.idsLocked()
	k.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("decrypt %s: key id %q is not in the keyring (have %s): it was retired or the value comes from another keyring; restore the key file that sealed it or set the value again: %w",
			aad, clipKID(env.KID), strings.Join(ids, ", "), errs.ErrNotFound)
	}
	sealed := make([]byte, 0, len(env.Nonce)+len(env.CT))
	sealed = append(append(sealed, env.Nonce...), env.CT...)
	pt, err := a.Open(nil, nil, sealed, []byte(aad))
	if err != nil {
		return nil, fmt.Errorf("decrypt %s: %w: %w", aad, ErrWrongField, errs.ErrInvalidArgument)
	}
	// A user secret that opens proves this keyring protects data: keep it.
	if err := k.noteUse(aad); err != nil {
		clear(pt)
		return nil, err
	}
	return pt, nil
}

// EncryptString is Encrypt returning the envelope's JSON text and key id (the
// shape of the Encrypt RPC).
func (k *Keyring) EncryptString(plaintext []byte, aad string) (text, kid string, err error) {
	env, err := k.Encrypt(plaintext, aad)
	if err != nil {
		return "", "", err
	}
	text, err = env.Encode()
	return text, env.KID, err
}

// DecryptString parses the envelope text (before any crypto) and opens it.
func (k *Keyring) DecryptString(text, aad string) (plaintext []byte, kid string, err error) {
	env, err := envelope.Decode(text)
	if err != nil {
		return nil, "", fmt.Errorf("decrypt %s: %w", aad, err)
	}
	pt, err := k.Decrypt(env, aad)
	return pt, env.KID, err
}

// Rewrap re-seals text under the primary key; the plaintext never leaves the
// keyring. An envelope already under the primary is returned unchanged after
// checking that it opens for aad.
func (k *Keyring) Rewrap(text, aad string) (out, kid string, changed bool, err error) {
	env, err := envelope.Decode(text)
	if err != nil {
		return "", "", false, fmt.Errorf("rewrap %s: %w", aad, err)
	}
	pt, err := k.Decrypt(env, aad)
	if err != nil {
		return "", "", false, err
	}
	defer clear(pt)
	k.mu.RLock()
	primary := k.keys.Primary
	k.mu.RUnlock()
	if env.KID == primary {
		return text, primary, false, nil
	}
	out, kid, err = k.EncryptString(pt, aad)
	return out, kid, err == nil, err
}

// Rotate adds a new key and makes it primary; older keys stay for decryption.
func (k *Keyring) Rotate() (KeyInfo, error) {
	var added Key
	keys, err := k.store.Update(func(cur Keys) (Keys, error) {
		next := 1
		for _, key := range cur.Keys {
			if n, err := strconv.Atoi(strings.TrimPrefix(key.ID, "k")); err == nil && n >= next {
				next = n + 1
			}
		}
		nk, err := k.newKey("k" + strconv.Itoa(next))
		if err != nil {
			return Keys{}, err
		}
		added = nk
		return Keys{Primary: nk.ID, Keys: append(slices.Clone(cur.Keys), nk)}, nil
	})
	if err != nil {
		return KeyInfo{}, fmt.Errorf("rotate: %w", err)
	}
	if err := k.install(keys); err != nil {
		return KeyInfo{}, err
	}
	return info(added, true), nil
}

// Retire removes a non-primary key. The caller must have rewrapped every
// envelope first: values still sealed under it become unreadable (the
// gateway's RetireKey checks). A file store keeps the previous ring in
// <key file>.before-retire.
func (k *Keyring) Retire(kid string) error {
	update := k.store.Update
	if b, ok := k.store.(interface {
		UpdateKeepingBackup(func(Keys) (Keys, error)) (Keys, error)
	}); ok {
		update = b.UpdateKeepingBackup // the file store keeps the ring as it was
	}
	keys, err := update(func(cur Keys) (Keys, error) {
		if kid == cur.Primary {
			return Keys{}, fmt.Errorf("key %s is the primary; rotate first, rewrap, then retire it: %w", kid, errs.ErrFailedPrecondition)
		}
		i := slices.IndexFunc(cur.Keys, func(key Key) bool { return key.ID == kid })
		if i < 0 {
			return Keys{}, fmt.Errorf("key %q is not in the keyring: %w", clipKID(kid), errs.ErrNotFound)
		}
		return Keys{Primary: cur.Primary, Keys: slices.Delete(slices.Clone(cur.Keys), i, i+1)}, nil
	})
	if err != nil {
		return fmt.Errorf("retire: %w", err)
	}
	return k.install(keys)
}

// Status lists the keys without their material.
func (k *Keyring) Status() Status {
	k.mu.RLock()
	defer k.mu.RUnlock()
	st := Status{Primary: k.keys.Primary, Location: k.store.Location()}
	for _, key := range k.keys.Keys {
		st.Keys = append(st.Keys, info(key, key.ID == k.keys.Primary))
	}
	return st
}

// Primary returns the id of the primary key.
func (k *Keyring) Primary() string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.keys.Primary
}

func (k *Keyring) idsLocked() []string {
	ids := make([]string, 0, len(k.keys.Keys))
	for _, key := range k.keys.Keys {
		ids = append(ids, key.ID)
	}
	return ids
}

// fingerprint identifies a key to an operator (compare two hosts) without
// revealing anything usable: a SHA-256 prefix of an HMAC under the key.
func fingerprint(mat []byte) string {
	m := hmac.New(sha256.New, mat)
	m.Write([]byte("fingerprint"))
	sum := sha256.Sum256(m.Sum(nil))
	return hex.EncodeToString(sum[:8])
}

func info(key Key, primary bool) KeyInfo {
	return KeyInfo{ID: key.ID, Created: key.Created, Fingerprint: fingerprint(key.Material), Primary: primary}
}

func clipKID(s string) string {
	if len(s) > 16 {
		return s[:16] + "..."
	}
	return s
}
