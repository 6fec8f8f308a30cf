package keyring

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/moltbot/moltbot-secure/services/atomicfile"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// FileFormatVersion is the version of the key file format.
const FileFormatVersion = 1

// KeySize is the AES-256 key length.
const KeySize = 32

// maxKeyFileSize bounds what Load reads; a real key file is well under 1 KiB
// per key.
const maxKeyFileSize = 1 << 20

// ErrNoKeyring is returned by KeyStore.Load when no keyring exists yet.
var ErrNoKeyring = fmt.Errorf("no keyring: %w", errs.ErrNotFound)

// Key is one versioned key. Material never leaves the keyring package.
type Key struct {
	ID       string
	Created  time.Time
	Material []byte
}

// Keys is the whole persisted keyring.
type Keys struct {
	Primary string
	Keys    []Key
}

// KeyStore persists a keyring. The key file is the implementation now; Vault
// transit or a cloud KMS wrapping the keyring is the seam for later
// (DESIGN.md section 7b).
type KeyStore interface {
	// Load returns the keyring, ErrNoKeyring when none exists, or an error
	// (never a fresh keyring) when it exists but cannot be read or parsed.
	Load() (Keys, error)
	// Create stores the first keyring exclusively; when one already exists it
	// fails with errs.ErrAlreadyExists and leaves it alone.
	Create(Keys) error
	// Update loads, applies fn and persists under a lock that also excludes
	// other processes.
	Update(fn func(Keys) (Keys, error)) (Keys, error)
	// Location names the store for status and error messages.
	Location() string
	// Usage returns the durable record of whether the keyring has protected
	// a user secret; with no record it returns Usage{Known: false}.
	Usage() (Usage, error)
	// SetUsage persists u durably (fsync) before returning.
	SetUsage(u Usage) error
	// Replace validates k and swaps it in for the current keyring under the
	// store's lock, keeping the old one as a backup; check runs under the same
	// lock and may refuse. It returns where the backup went.
	Replace(k Keys, check func() error) (backup string, err error)
}

// Usage says whether a keyring has sealed or opened a secret outside the
// gateway-internal "internal/" paths: such a keyring must never be replaced
// (import), or that secret is lost.
type Usage struct {
	// Known is false when no record exists: the keyring predates the record,
	// so its history is unknown and it counts as used (fail closed).
	Known bool
	Used  bool
	// First is the field path (AAD) of the first user secret, and At when.
	First string
	At    time.Time
}

// InUse reports whether the keyring must be kept.
func (u Usage) InUse() bool { return !u.Known || u.Used }

// FileStore is the key file keys/secrets.key: JSON
// {"version":1,"primary":"k2","keys":[{"id":"k1","created":"...","key":"<b64>"}]},
// 0600 in a 0700 directory.
type FileStore struct {
	path string
	mu   sync.Mutex // in-process half of the lock; flock is the cross-process half
}

// NewFileStore returns a store for the key file at path (normally
// <state>/keys/secrets.key).
func NewFileStore(path string) *FileStore { return &FileStore{path: path} }

// Location implements KeyStore.
func (s *FileStore) Location() string { return s.path }

type fileJSON struct {
	Version int       `json:"version"`
	Primary string    `json:"primary"`
	Keys    []keyJSON `json:"keys"`
}

type keyJSON struct {
	ID      string `json:"id"`
	Created string `json:"created"`
	Key     string `json:"key"`
}

var kidRE = regexp.MustCompile(`^k[1-9][0-9]{0,8}$`)

// Load implements KeyStore.
func (s *FileStore) Load() (Keys, error) {
	st, err := os.Lstat(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return Keys{}, ErrNoKeyring
	}
	if err != nil {
		return Keys{}, s.refuse("cannot stat it: %v", err)
	}
	if !st.Mode().IsRegular() {
		return Keys{}, s.refuse("it is not a regular file (%s); a symlink or device is not accepted", st.Mode().Type())
	}
	if st.Mode().Perm()&0o077 != 0 {
		return Keys{}, s.refuse("its mode is %04o, readable by others; run `chmod 600 %s` (and check who read it)", st.Mode().Perm(), s.path)
	}
	if st.Size() > maxKeyFileSize {
		return Keys{}, s.refuse("it is %d bytes, too large for a key file", st.Size())
	}
	b, err := os.ReadFile(s.path)
	if err != nil {
		return Keys{}, s.refuse("cannot read it: %v", err)
	}
	k, err := parseKeyFile(b)
	if err != nil {
		return Keys{}, s.refuse("%v", err)
	}
	return k, nil
}

// refuse builds the error for an existing but unusable key file. Regenerating
// it would orphan every secret sealed under it, so the message gives the fix.
func (s *FileStore) refuse(format string, args ...any) error {
	return fmt.Errorf("key file %s: %s; refusing to start (a new key would orphan every encrypted secret): restore keys/secrets.key from your backup, or fix the file, then restart: %w",
		s.path, fmt.Sprintf(format, args...), errs.ErrFailedPrecondition)
}

func parseKeyFile(b []byte) (Keys, error) {
	var f fileJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return Keys{}, fmt.Errorf("not a valid key file (JSON): %v", err)
	}
	if f.Version != FileFormatVersion {
		return Keys{}, fmt.Errorf("format version %d is not supported (want %d)", f.Version, FileFormatVersion)
	}
	k := Keys{Primary: f.Primary}
	for i, kj := range f.Keys {
		if !kidRE.MatchString(kj.ID) {
			return Keys{}, fmt.Errorf("keys[%d]: id %q is not of the form k<N>", i, kj.ID)
		}
		mat, err := base64.StdEncoding.Strict().DecodeString(kj.Key)
		if err != nil {
			return Keys{}, fmt.Errorf("key %s: not valid base64", kj.ID)
		}
		if len(mat) != KeySize {
			return Keys{}, fmt.Errorf("key %s: %d bytes, want %d", kj.ID, len(mat), KeySize)
		}
		created, err := time.Parse(time.RFC3339Nano, kj.Created)
		if err != nil {
			return Keys{}, fmt.Errorf("key %s: created %q is not an RFC 3339 time", kj.ID, kj.Created)
		}
		k.Keys = append(k.Keys, Key{ID: kj.ID, Created: created, Material: mat})
	}
	if err := k.check(); err != nil {
		return Keys{}, err
	}
	return k, nil
}

// check states the invariants persisted keyrings keep, checked together
// before every save and after every load.
func (k Keys) check() error {
	if len(k.Keys) == 0 {
		return errors.New("no keys")
	}
	seen := map[string]bool{}
	for _, key := range k.Keys {
		if seen[key.ID] {
			return fmt.Errorf("key id %s appears twice", key.ID)
		}
		seen[key.ID] = true
		if len(key.Material) != KeySize {
			return fmt.Errorf("key %s: %d bytes, want %d", key.ID, len(key.Material), KeySize)
		}
	}
	if !seen[k.Primary] {
		return fmt.Errorf("primary %q is not among the keys", k.Primary)
	}
	return nil
}

func encodeKeyFile(k Keys) ([]byte, error) {
	if err := k.check(); err != nil {
		return nil, fmt.Errorf("refusing to save an invalid keyring: %w", err)
	}
	f := fileJSON{Version: FileFormatVersion, Primary: k.Primary}
	for _, key := range k.Keys {
		f.Keys = append(f.Keys, keyJSON{ID: key.ID, Created: key.Created.UTC().Format(time.RFC3339Nano), Key: base64.StdEncoding.EncodeToString(key.Material)})
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func (s *FileStore) ensureDir() error {
	dir := filepath.Dir(s.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("key dir %s: %w", dir, err)
	}
	// MkdirAll leaves an existing dir as it is; the key dir must be private.
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("key dir %s: chmod 0700: %w", dir, err)
	}
	return nil
}

// Create implements KeyStore. The file is written to an O_EXCL temp file,
// fsynced, then hard-linked to the final name: link fails if the name exists,
// so two first starts racing cannot both install a key.
func (s *FileStore) Create(k Keys) error {
	b, err := encodeKeyFile(k)
	if err != nil {
		return err
	}
	if err := s.ensureDir(); err != nil {
		return err
	}
	tmp := s.path + ".new-" + strconv.Itoa(os.Getpid()) + "-" + randSuffix()
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create key file: %w", err)
	}
	defer os.Remove(tmp)
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("create key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("create key file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("create key file: %w", err)
	}
	if err := os.Link(tmp, s.path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("key file %s: %w", s.path, errs.ErrAlreadyExists)
		}
		return fmt.Errorf("create key file: %w", err)
	}
	if err := os.Remove(tmp); err != nil {
		return fmt.Errorf("create key file: remove temp: %w", err)
	}
	return atomicfile.SyncDir(filepath.Dir(s.path))
}

// Update implements KeyStore.
func (s *FileStore) Update(fn func(Keys) (Keys, error)) (Keys, error) {
	return s.update(fn, func(b []byte) error { return atomicfile.WriteFile(s.path, b, 0o600) })
}

// RetiredBackupSuffix names the copy of the keyring kept by the last
// Retire (<key file>.before-retire, 0600): a key retired by mistake can be
// put back by hand while nothing else is lost.
const RetiredBackupSuffix = ".before-retire"

// UpdateKeepingBackup is Update that first copies the current key file to
// <path>.before-retire (both writes atomic).
func (s *FileStore) UpdateKeepingBackup(fn func(Keys) (Keys, error)) (Keys, error) {
	return s.update(fn, func(b []byte) error {
		return atomicfile.WriteWithBackup(s.path, b, 0o600, s.path+RetiredBackupSuffix)
	})
}

// update runs fn under both locks and persists its result with write.
func (s *FileStore) update(fn func(Keys) (Keys, error), write func([]byte) error) (Keys, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.ensureDir(); err != nil {
		return Keys{}, err
	}
	lf, err := os.OpenFile(s.path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return Keys{}, fmt.Errorf("lock key file: %w", err)
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		return Keys{}, fmt.Errorf("lock key file: %w", err)
	}
	defer syscall.Flock(int(lf.Fd()), syscall.LOCK_UN) //nolint:errcheck // Close releases it anyway
	cur, err := s.Load()
	if err != nil {
		return Keys{}, err
	}
	next, err := fn(cur)
	if err != nil {
		return Keys{}, err
	}
	b, err := encodeKeyFile(next)
	if err != nil {
		return Keys{}, err
	}
	if err := write(b); err != nil {
		return Keys{}, fmt.Errorf("save key file: %w", err)
	}
	return next, nil
}

type usageJSON struct {
	Version int    `json:"version"`
	Used    bool   `json:"used"`
	First   string `json:"first,omitempty"`
	At      string `json:"at,omitempty"`
}

func (s *FileStore) usagePath() string { return s.path + ".usage" }

// Usage implements KeyStore. The record is keys/secrets.key.usage.
func (s *FileStore) Usage() (Usage, error) {
	b, err := os.ReadFile(s.usagePath())
	if errors.Is(err, fs.ErrNotExist) {
		return Usage{}, nil
	}
	if err != nil {
		return Usage{}, fmt.Errorf("read usage record: %w", err)
	}
	var u usageJSON
	if err := json.Unmarshal(b, &u); err != nil || u.Version != 1 {
		// An unreadable record cannot prove the keyring unused.
		return Usage{}, nil
	}
	at, _ := time.Parse(time.RFC3339Nano, u.At)
	return Usage{Known: true, Used: u.Used, First: u.First, At: at}, nil
}

// SetUsage implements KeyStore (atomic write with fsync of file and dir).
func (s *FileStore) SetUsage(u Usage) error {
	if err := s.ensureDir(); err != nil {
		return err
	}
	j := usageJSON{Version: 1, Used: u.Used, First: u.First}
	if !u.At.IsZero() {
		j.At = u.At.UTC().Format(time.RFC3339Nano)
	}
	b, err := json.Marshal(j)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(s.usagePath(), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save usage record: %w", err)
	}
	return nil
}

// Replace implements KeyStore: the current file is copied to
// secrets.key.replaced-<UTC time> (0600), then the new one is written
// atomically, both under the same lock as Update.
func (s *FileStore) Replace(k Keys, check func() error) (string, error) {
	if err := k.check(); err != nil {
		return "", fmt.Errorf("refusing to install an invalid keyring: %w: %w", err, errs.ErrInvalidArgument)
	}
	backup := s.path + ".replaced-" + time.Now().UTC().Format("20060102T150405.000000000Z")
	_, err := s.update(func(Keys) (Keys, error) {
		if check != nil {
			if err := check(); err != nil {
				return Keys{}, err
			}
		}
		return k, nil
	}, func(next []byte) error {
		return atomicfile.WriteWithBackup(s.path, next, 0o600, backup)
	})
	if err != nil {
		return "", err
	}
	return backup, nil
}

func randSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return base64.RawURLEncoding.EncodeToString(b[:])
}
