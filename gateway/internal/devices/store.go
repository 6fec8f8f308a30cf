// Package devices is the Control UI's device identity: the browsers that
// registered an Ed25519 public key with the gateway token, pending until the
// owner approves them, kept in the gateway's state (devices.json, 0600,
// atomic writes with a backup). The challenge and session half is in
// session.go.
package devices

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/moltbot/moltbot-secure/services/atomicfile"
	"github.com/moltbot/moltbot-secure/services/auth"
)

// File is the store's name under the state dir.
const File = "devices.json"

// MaxPending bounds the pending queue: any token holder may register a
// device, so the owner's queue must not be floodable.
const MaxPending = 5

// MaxName bounds the (untrusted) label a browser gives itself.
const MaxName = 64

// States of a device.
const (
	StatePending  = "pending"
	StateApproved = "approved"
)

// Errors callers map to status codes.
var (
	ErrNotFound     = errors.New("no such device")
	ErrTooMany      = fmt.Errorf("%d devices are already pending: the owner must approve or reject one first (`moltbot devices list`)", MaxPending)
	ErrBadKey       = errors.New("public key: want 32 bytes of a raw Ed25519 key")
	ErrBadRole      = fmt.Errorf("role: want %s or %s", auth.RoleOwner, auth.RoleClient)
	ErrNotPending   = errors.New("device is not pending (approve and reject act on pending devices; revoke removes an approved one)")
	ErrNotApproved  = errors.New("device is not approved (reject a pending device instead)")
	ErrAmbiguousRef = errors.New("fingerprint prefix matches more than one device: give more characters")
)

// Device is one registered browser. Nothing here is secret: the public key
// and its fingerprint are shown to the owner.
type Device struct {
	Fingerprint string    `json:"fingerprint"`
	PublicKey   []byte    `json:"publicKey"`
	Name        string    `json:"name,omitempty"`
	Origin      string    `json:"origin,omitempty"`
	State       string    `json:"state"`
	Role        string    `json:"role,omitempty"`
	CreatedAt   time.Time `json:"createdAt"`
	ApprovedAt  time.Time `json:"approvedAt,omitzero"`
	LastSeen    time.Time `json:"lastSeen,omitzero"`
}

// Fingerprint is the short id the owner compares between the page and
// `moltbot devices list`: the first 80 bits of SHA-256 over the raw public
// key, as hex in groups of four.
func Fingerprint(pub []byte) string {
	sum := sha256.Sum256(pub)
	h := hex.EncodeToString(sum[:10])
	var b strings.Builder
	for i := 0; i < len(h); i += 4 {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(h[i : i+4])
	}
	return b.String()
}

// Store is the device list on disk.
type Store struct {
	path string
	now  func() time.Time

	mu      sync.Mutex
	devices map[string]*Device
	removed []func(Device)
}

type fileFormat struct {
	Version int       `json:"version"`
	Devices []*Device `json:"devices"`
}

// Open loads path (a missing file is an empty store).
func Open(path string) (*Store, error) {
	s := &Store{path: path, now: time.Now, devices: map[string]*Device{}}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return s, nil
	case err != nil:
		return nil, fmt.Errorf("devices: read %s: %w", path, err)
	}
	var f fileFormat
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("devices: parse %s: %w (restore %s.bak or remove the file; browsers then register again)", path, err, path)
	}
	for i, d := range f.Devices {
		if len(d.PublicKey) != ed25519.PublicKeySize || d.Fingerprint != Fingerprint(d.PublicKey) ||
			(d.State != StatePending && d.State != StateApproved) {
			return nil, fmt.Errorf("devices: %s: devices[%d] is malformed (key, fingerprint or state); remove it", path, i)
		}
		s.devices[d.Fingerprint] = d
	}
	return s, nil
}

// OnRemoved registers f, called (outside the lock) with every device that
// is rejected or revoked: the session table ends its sessions there.
func (s *Store) OnRemoved(f func(Device)) {
	s.mu.Lock()
	s.removed = append(s.removed, f)
	s.mu.Unlock()
}

// save writes the store; called with s.mu held.
func (s *Store) save() error {
	f := fileFormat{Version: 1}
	for _, d := range s.devices {
		f.Devices = append(f.Devices, d)
	}
	sort.Slice(f.Devices, func(i, j int) bool { return f.Devices[i].CreatedAt.Before(f.Devices[j].CreatedAt) })
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteWithBackup(s.path, append(b, '\n'), 0o600, s.path+".bak")
}

// Register adds a pending device for pub, or returns the one already there
// (a browser registering again is not a new request).
func (s *Store) Register(pub []byte, name, origin string) (Device, error) {
	if len(pub) != ed25519.PublicKeySize {
		return Device{}, ErrBadKey
	}
	fp := Fingerprint(pub)
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.devices[fp]; ok {
		return *d, nil
	}
	pending := 0
	for _, d := range s.devices {
		if d.State == StatePending {
			pending++
		}
	}
	if pending >= MaxPending {
		return Device{}, ErrTooMany
	}
	d := &Device{Fingerprint: fp, PublicKey: append([]byte(nil), pub...), Name: cleanName(name), Origin: origin,
		State: StatePending, CreatedAt: s.now().UTC()}
	s.devices[fp] = d
	if err := s.save(); err != nil {
		delete(s.devices, fp)
		return Device{}, err
	}
	return *d, nil
}

// cleanName keeps a printable, bounded label (it is shown in a terminal).
func cleanName(n string) string {
	n = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return -1
		}
		return r
	}, n)
	if r := []rune(n); len(r) > MaxName {
		n = string(r[:MaxName])
	}
	return strings.TrimSpace(n)
}

// Get returns the device with fingerprint fp.
func (s *Store) Get(fp string) (Device, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devices[fp]
	if !ok {
		return Device{}, false
	}
	return *d, true
}

// List returns every device, oldest first.
func (s *Store) List() []Device {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Device, 0, len(s.devices))
	for _, d := range s.devices {
		out = append(out, *d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out
}

// resolve finds a device by its fingerprint or a unique prefix of it
// (dashes optional); called with s.mu held.
func (s *Store) resolve(ref string) (*Device, error) {
	want := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(ref), "-", ""))
	if len(want) < 4 {
		return nil, fmt.Errorf("fingerprint %q: give at least 4 characters: %w", ref, ErrNotFound)
	}
	var found *Device
	for fp, d := range s.devices {
		if strings.HasPrefix(strings.ReplaceAll(fp, "-", ""), want) {
			if found != nil {
				return nil, ErrAmbiguousRef
			}
			found = d
		}
	}
	if found == nil {
		return nil, fmt.Errorf("fingerprint %q: %w (see `moltbot devices list`)", ref, ErrNotFound)
	}
	return found, nil
}

// Approve makes a pending device usable with role (owner or client).
func (s *Store) Approve(ref, role string) (Device, error) {
	if role == "" {
		role = auth.RoleOwner
	}
	if role != auth.RoleOwner && role != auth.RoleClient {
		return Device{}, ErrBadRole
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d, err := s.resolve(ref)
	if err != nil {
		return Device{}, err
	}
	if d.State != StatePending {
		return Device{}, ErrNotPending
	}
	old := *d
	d.State, d.Role, d.ApprovedAt = StateApproved, role, s.now().UTC()
	if err := s.save(); err != nil {
		*d = old
		return Device{}, err
	}
	return *d, nil
}

// Reject drops a pending device; Revoke drops an approved one and ends its
// sessions. Both call the OnRemoved hooks.
func (s *Store) Reject(ref string) (Device, error) { return s.remove(ref, StatePending, ErrNotPending) }

// Revoke: see Reject.
func (s *Store) Revoke(ref string) (Device, error) {
	return s.remove(ref, StateApproved, ErrNotApproved)
}

func (s *Store) remove(ref, state string, wrong error) (Device, error) {
	s.mu.Lock()
	d, err := s.resolve(ref)
	if err != nil {
		s.mu.Unlock()
		return Device{}, err
	}
	if d.State != state {
		s.mu.Unlock()
		return Device{}, wrong
	}
	delete(s.devices, d.Fingerprint)
	if err := s.save(); err != nil {
		s.devices[d.Fingerprint] = d
		s.mu.Unlock()
		return Device{}, err
	}
	hooks := append([]func(Device){}, s.removed...)
	s.mu.Unlock()
	for _, h := range hooks {
		h(*d)
	}
	return *d, nil
}

// Touch records that the device opened a session (not saved to disk: a
// last-seen time is not worth a write per login).
func (s *Store) Touch(fp string) {
	s.mu.Lock()
	if d, ok := s.devices[fp]; ok {
		d.LastSeen = s.now().UTC()
	}
	s.mu.Unlock()
}
