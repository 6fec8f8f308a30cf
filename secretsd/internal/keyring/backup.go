package keyring

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"

	"github.com/moltbot/moltbot-secure/services/errs"
)

// InternalPrefix marks field paths (AADs) of gateway-internal data, such as
// the security log's sealed HMAC key. Sealing them does not make the keyring
// "in use": the gateway re-seals them itself around an import.
const InternalPrefix = "internal/"

// DefaultExportWorkFactor is age's own default scrypt cost (2^18, about a
// second and 256 MiB), also the highest an import accepts, so a crafted file
// cannot make secretsd burn more.
const DefaultExportWorkFactor = 18

// Passphrase bounds for exports: age's scrypt slows guessing, but a short
// passphrase still falls to a dictionary.
const (
	MinPassphrase = 12
	MaxPassphrase = 1024
)

// maxExport bounds an import's sealed input (armored age of a key file).
const maxExport = 2 * maxKeyFileSize

// ErrWrongPassphrase: the export does not open with the given passphrase.
var ErrWrongPassphrase = errors.New("the passphrase does not open this key export")

// noteUse records, durably and once, that the keyring protected a user
// secret (a path outside InternalPrefix).
func (k *Keyring) noteUse(aad string) error {
	if k.used.Load() || strings.HasPrefix(aad, InternalPrefix) {
		return nil
	}
	k.usedMu.Lock()
	defer k.usedMu.Unlock()
	if k.used.Load() {
		return nil
	}
	if err := k.store.SetUsage(Usage{Known: true, Used: true, First: aad, At: k.now().UTC()}); err != nil {
		return fmt.Errorf("record first use of the keyring: %w", err)
	}
	k.used.Store(true)
	return nil
}

// Usage returns the keyring's usage record.
func (k *Keyring) Usage() (Usage, error) { return k.store.Usage() }

func checkPassphrase(p []byte, export bool) error {
	switch {
	case len(p) == 0:
		return fmt.Errorf("passphrase is empty: %w", errs.ErrInvalidArgument)
	case len(p) > MaxPassphrase:
		return fmt.Errorf("passphrase is %d bytes, more than the %d-byte limit: %w", len(p), MaxPassphrase, errs.ErrInvalidArgument)
	case export && len([]rune(string(p))) < MinPassphrase:
		return fmt.Errorf("passphrase is too short: use at least %d characters (a few random words are easy to keep and hard to guess): %w", MinPassphrase, errs.ErrInvalidArgument)
	}
	return nil
}

// Export returns the whole keyring sealed under passphrase: an ASCII-armored
// age file with one scrypt recipient (it also opens with `age -d`). The key
// file text exists in memory only for the time of sealing.
func (k *Keyring) Export(passphrase []byte) ([]byte, Status, error) {
	if err := checkPassphrase(passphrase, true); err != nil {
		return nil, Status{}, fmt.Errorf("key export: %w", err)
	}
	k.scryptMu.Lock()
	defer k.scryptMu.Unlock()
	k.mu.RLock()
	plain, err := encodeKeyFile(k.keys)
	k.mu.RUnlock()
	if err != nil {
		return nil, Status{}, fmt.Errorf("key export: %w", err)
	}
	defer clear(plain)
	r, err := age.NewScryptRecipient(string(passphrase))
	if err != nil {
		return nil, Status{}, fmt.Errorf("key export: %w: %w", err, errs.ErrInvalidArgument)
	}
	r.SetWorkFactor(k.wf)
	var out bytes.Buffer
	aw := armor.NewWriter(&out)
	w, err := age.Encrypt(aw, r)
	if err != nil {
		return nil, Status{}, fmt.Errorf("key export: seal: %w", err)
	}
	if _, err := w.Write(plain); err != nil {
		return nil, Status{}, fmt.Errorf("key export: seal: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, Status{}, fmt.Errorf("key export: seal: %w", err)
	}
	if err := aw.Close(); err != nil {
		return nil, Status{}, fmt.Errorf("key export: seal: %w", err)
	}
	return out.Bytes(), k.Status(), nil
}

// Import opens an export with passphrase, validates the keyring inside
// (format, ids, lengths, primary) and replaces this keyring with it, keeping
// the old key file as a backup, but only while this keyring has protected no
// user secret. It returns the new status and the backup's path.
func (k *Keyring) Import(sealed, passphrase []byte) (Status, string, error) {
	if err := checkPassphrase(passphrase, false); err != nil {
		return Status{}, "", fmt.Errorf("key import: %w", err)
	}
	if len(sealed) == 0 {
		return Status{}, "", fmt.Errorf("key import: the key export is empty: %w", errs.ErrInvalidArgument)
	}
	if len(sealed) > maxExport {
		return Status{}, "", fmt.Errorf("key import: the key export is %d bytes, more than the %d-byte limit; is it the file `moltbot security key export` wrote?: %w", len(sealed), maxExport, errs.ErrInvalidArgument)
	}
	k.scryptMu.Lock()
	keys, err := k.open(sealed, passphrase)
	k.scryptMu.Unlock()
	if err != nil {
		return Status{}, "", fmt.Errorf("key import: %w", err)
	}
	defer func() {
		for _, key := range keys.Keys {
			clear(key.Material)
		}
	}()
	k.usedMu.Lock()
	defer k.usedMu.Unlock()
	backup, err := k.store.Replace(keys, func() error {
		u, err := k.store.Usage()
		if err != nil {
			return err
		}
		return refuseInUse(u)
	})
	if err != nil {
		return Status{}, "", fmt.Errorf("key import: %w", err)
	}
	// Load back what was persisted so memory matches the file exactly.
	cur, err := k.store.Load()
	if err != nil {
		return Status{}, "", fmt.Errorf("key import: reload: %w", err)
	}
	if err := k.install(cur); err != nil {
		return Status{}, "", fmt.Errorf("key import: reload: %w", err)
	}
	return k.Status(), backup, nil
}

func refuseInUse(u Usage) error {
	if !u.Known {
		return fmt.Errorf("this keyring has no usage record (it predates key export), so it may protect secrets that an import would orphan; refusing. Import into a fresh stack (`make purge`, then `make up`), or keep this keyring: %w", errs.ErrFailedPrecondition)
	}
	if u.Used {
		return fmt.Errorf("this keyring already protects secrets (first: %s at %s); replacing it would make them unreadable, so import is refused. Import only into a fresh stack (`make purge`, then `make up`, then import before setting any secret); to keep this stack's secrets instead, export this keyring: %w",
			u.First, u.At.Format("2006-01-02 15:04:05Z"), errs.ErrFailedPrecondition)
	}
	return nil
}

// open decrypts and parses an export without touching the keyring.
func (k *Keyring) open(sealed, passphrase []byte) (Keys, error) {
	id, err := age.NewScryptIdentity(string(passphrase))
	if err != nil {
		return Keys{}, fmt.Errorf("%w: %w", err, errs.ErrInvalidArgument)
	}
	id.SetMaxWorkFactor(max(k.wf, DefaultExportWorkFactor))
	var src io.Reader = bytes.NewReader(sealed)
	if bytes.HasPrefix(bytes.TrimSpace(sealed), []byte(armor.Header)) {
		src = armor.NewReader(bytes.NewReader(sealed))
	}
	r, err := age.Decrypt(src, id)
	var nomatch *age.NoIdentityMatchError
	switch {
	case errors.As(err, &nomatch) && errors.Is(err, age.ErrIncorrectIdentity) && isScryptOnly(nomatch):
		return Keys{}, fmt.Errorf("%w (check the passphrase file or retype it): %w", ErrWrongPassphrase, errs.ErrInvalidArgument)
	case err != nil:
		// age's parse errors quote the input; it may be a raw key file.
		return Keys{}, fmt.Errorf("not a readable key export (want the age file, sealed with a passphrase, that `moltbot security key export` wrote): %w", errs.ErrInvalidArgument)
	}
	plain, err := io.ReadAll(io.LimitReader(r, maxKeyFileSize+1))
	defer clear(plain)
	if err != nil {
		// The age payload is authenticated chunk by chunk: a change after
		// the header shows up here.
		return Keys{}, fmt.Errorf("the key export is damaged or was altered (its authentication failed); use another copy: %w", errs.ErrInvalidArgument)
	}
	if len(plain) > maxKeyFileSize {
		return Keys{}, fmt.Errorf("the keyring inside the export is larger than %d bytes: %w", maxKeyFileSize, errs.ErrInvalidArgument)
	}
	keys, err := parseKeyFile(plain)
	if err != nil { // parseKeyFile names ids and lengths, never key bytes
		return Keys{}, fmt.Errorf("the keyring inside the export is not valid: %v: %w", err, errs.ErrInvalidArgument)
	}
	return keys, nil
}

func isScryptOnly(e *age.NoIdentityMatchError) bool {
	return len(e.StanzaTypes) == 1 && e.StanzaTypes[0] == "scrypt"
}
