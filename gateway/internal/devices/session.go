package devices

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"sync"
	"time"

	"github.com/moltbot/moltbot-secure/services/auth"
)

// Session lifetimes: a nonce must be signed at once; a session credential
// lives in the page's memory and is renewed by signing again.
const (
	NonceTTL   = time.Minute
	SessionTTL = 10 * time.Minute
	// maxNonces bounds outstanding challenges (anyone who reaches the port
	// may ask for one).
	maxNonces = 256
)

// Errors of the session handshake; none says more than needed.
var (
	ErrBadChallenge = errors.New("challenge unknown, used or expired: ask for a new one")
	ErrBadSignature = errors.New("signature does not verify for this device, nonce and origin")
	ErrPending      = errors.New("device is pending: the owner approves it with `moltbot devices approve <fingerprint>`")
)

// SignedMessage is what the browser signs: the nonce bound to the origin
// the page runs on and the device, under a fixed context string, so a
// signature made for one origin (or for anything else) is useless here.
func SignedMessage(origin, fingerprint, nonce string) []byte {
	return []byte("moltbot-control-ui-login-v1\n" + origin + "\n" + fingerprint + "\n" + nonce)
}

// Session is an authenticated device session.
type Session struct {
	Device  string // fingerprint
	Role    string
	Origin  string
	Expires time.Time
	// Unapproved: let in by skipApproval (dangerouslyDisableDeviceAuth)
	// while pending; the caller refuses it once that flag is gone.
	Unapproved bool
	// Ctx ends when the session expires or its device is removed: streams
	// served to the session derive from it.
	Ctx    context.Context
	cancel context.CancelFunc
}

type challenge struct {
	device, origin string
	expires        time.Time
}

// Sessions issues challenges and session credentials for the devices of a
// Store.
type Sessions struct {
	store *Store
	now   func() time.Time

	mu       sync.Mutex
	nonces   map[string]challenge
	sessions map[[sha256.Size]byte]*Session
}

// NewSessions returns the session table of store; a device removed from
// the store loses its sessions at once.
func NewSessions(store *Store) *Sessions {
	s := &Sessions{store: store, now: time.Now, nonces: map[string]challenge{}, sessions: map[[sha256.Size]byte]*Session{}}
	store.OnRemoved(func(d Device) { s.EndDevice(d.Fingerprint) })
	return s
}

func randomString() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Challenge returns a fresh single-use nonce for device fp on origin.
func (s *Sessions) Challenge(fp, origin string) (string, error) {
	if _, ok := s.store.Get(fp); !ok {
		return "", ErrNotFound
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for n, c := range s.nonces {
		if now.After(c.expires) {
			delete(s.nonces, n)
		}
	}
	if len(s.nonces) >= maxNonces {
		return "", errors.New("too many outstanding challenges: retry in a minute")
	}
	n := randomString()
	s.nonces[n] = challenge{device: fp, origin: origin, expires: now.Add(NonceTTL)}
	return n, nil
}

// Open checks the signature over SignedMessage(origin, fp, nonce) and
// starts a session. A pending device is refused unless skipApproval
// (gateway.controlUi.dangerouslyDisableDeviceAuth), which lets it in as the
// owner. It returns the credential (shown once, stored as a digest).
func (s *Sessions) Open(fp, origin, nonce string, sig []byte, skipApproval bool) (string, *Session, error) {
	s.mu.Lock()
	c, ok := s.nonces[nonce]
	delete(s.nonces, nonce) // single use, whatever the outcome
	s.mu.Unlock()
	if !ok || c.device != fp || c.origin != origin || s.now().After(c.expires) {
		return "", nil, ErrBadChallenge
	}
	d, ok := s.store.Get(fp)
	if !ok {
		return "", nil, ErrNotFound
	}
	if !ed25519.Verify(ed25519.PublicKey(d.PublicKey), SignedMessage(origin, fp, nonce), sig) {
		return "", nil, ErrBadSignature
	}
	role, unapproved := d.Role, false
	if d.State != StateApproved {
		if !skipApproval {
			return "", nil, ErrPending
		}
		role, unapproved = auth.RoleOwner, true
	}
	tok := randomString()
	ctx, cancel := context.WithCancel(context.Background())
	sess := &Session{Device: fp, Role: role, Origin: origin, Expires: s.now().Add(SessionTTL), Unapproved: unapproved, Ctx: ctx, cancel: cancel}
	s.mu.Lock()
	s.sweep()
	s.sessions[sha256.Sum256([]byte(tok))] = sess
	s.mu.Unlock()
	s.store.Touch(fp)
	return tok, sess, nil
}

// sweep ends expired sessions; called with s.mu held.
func (s *Sessions) sweep() {
	now := s.now()
	for k, v := range s.sessions {
		if now.After(v.Expires) {
			v.cancel()
			delete(s.sessions, k)
		}
	}
}

// Lookup returns the live session of credential tok used from origin. The
// map is keyed by the credential's SHA-256, so a lookup compares digests of
// 256-bit random values, never the credential itself.
func (s *Sessions) Lookup(tok, origin string) (*Session, bool) {
	if tok == "" {
		return nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := sha256.Sum256([]byte(tok))
	sess, ok := s.sessions[k]
	if !ok {
		return nil, false
	}
	if s.now().After(sess.Expires) {
		sess.cancel()
		delete(s.sessions, k)
		return nil, false
	}
	if sess.Origin != origin {
		return nil, false
	}
	return sess, true
}

// EndDevice ends every session of device fp (and so its streams).
func (s *Sessions) EndDevice(fp string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, v := range s.sessions {
		if v.Device == fp {
			v.cancel()
			delete(s.sessions, k)
			n++
		}
	}
	return n
}

// Active returns how many sessions device fp has.
func (s *Sessions) Active(fp string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep()
	n := 0
	for _, v := range s.sessions {
		if v.Device == fp {
			n++
		}
	}
	return n
}
