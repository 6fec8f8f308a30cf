// Package sessions keeps the gateway's session index: which conversation
// keys exist, which agent and channel they belong to, and when they were
// last active. It is stored in <state>/sessions/sessions.json, written
// atomically (temp file, fsync, rename, fsync dir), so a crash leaves the
// old or the new index, never half of one.
//
// Keys are derived by services/sessionkey, the one rule the gateway and
// sandboxd share: only the owner's own ids reach agent:<agentId>:main.
package sessions

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/moltbot/moltbot-secure/services/atomicfile"
	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/errs"
	"github.com/moltbot/moltbot-secure/services/sessionkey"
)

// DMScope and its values are the shared session-key rule's
// (services/sessionkey), named here for the gateway's config wiring.
type DMScope = sessionkey.DMScope

// DM scopes.
const (
	ScopeMain           = sessionkey.ScopeMain
	ScopePerPeer        = sessionkey.ScopePerPeer
	ScopePerChannelPeer = sessionkey.ScopePerChannelPeer
	ScopePerSender      = sessionkey.ScopePerSender
)

// ParseDMScope checks a session.dmScope value ("" is main).
func ParseDMScope(s string) (DMScope, error) { return sessionkey.ParseDMScope(s) }

// Session is one entry of the index.
type Session struct {
	Key          string    `json:"key"`
	AgentID      string    `json:"agentId"`
	Channel      string    `json:"channel"`
	Main         bool      `json:"main"`
	LastActiveAt time.Time `json:"lastActiveAt"`
	// Sandboxed is always true: the gateway runs no command itself.
	Sandboxed bool `json:"sandboxed"`
	// Profile is the sandbox profile its commands run under ("main" for the
	// owner's main session, else "hardened"; "main" for all under mode off).
	Profile string `json:"profile,omitempty"`
}

type file struct {
	Version  int       `json:"version"`
	Sessions []Session `json:"sessions"`
}

const fileVersion = 1

// FlushInterval bounds how stale lastActiveAt may be on disk: a new session
// is written at once, activity on a known one at most this often, so a busy
// chat does not fsync on every message.
const FlushInterval = 10 * time.Second

// Store is the index. Safe for concurrent use.
type Store struct {
	path string
	now  func() time.Time

	mu        sync.Mutex
	m         map[string]Session
	dirty     bool
	lastFlush time.Time
	seq       uint64 // snapshots taken

	// The file is written under wmu, not mu: a flush's fsync must not
	// stall every other chat's Touch.
	wmu     sync.Mutex
	written uint64 // newest snapshot on disk
}

// snapshot is the index as of one moment, numbered so an older one never
// overwrites a newer one on disk.
type snapshot struct {
	seq      uint64
	sessions []Session
}

// Path is the index file inside the state dir.
func Path(stateDir string) string { return filepath.Join(stateDir, "sessions", "sessions.json") }

// Open loads the index at path (a missing file is an empty index). now may be nil.
func Open(path string, now func() time.Time) (*Store, error) {
	if now == nil {
		now = time.Now
	}
	s := &Store{path: path, now: now, m: map[string]Session{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read session index %s: %w", path, err)
	}
	var f file
	if err := config.CheckText(b, config.Text{Where: path, Noun: "file", MaxBytes: config.MaxFileBytes}); err != nil {
		return nil, fmt.Errorf("session index: %w; move it aside to start a fresh index", err)
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("session index %s is not valid JSON (%v); move it aside to start a fresh index: %w", path, err, errs.ErrFailedPrecondition)
	}
	if f.Version > fileVersion {
		return nil, fmt.Errorf("session index %s has version %d, newer than this gateway's %d: %w", path, f.Version, fileVersion, errs.ErrFailedPrecondition)
	}
	for _, x := range f.Sessions {
		if x.Key != "" {
			s.m[x.Key] = x
		}
	}
	return s, nil
}

// Touch records activity on a session, creating it when new, and persists
// (at once for a new session, else at most every FlushInterval).
func (s *Store) Touch(x Session) error {
	s.mu.Lock()
	now := s.now()
	_, known := s.m[x.Key]
	x.LastActiveAt = now.UTC()
	s.m[x.Key] = x
	s.dirty = true
	if known && now.Sub(s.lastFlush) < FlushInterval {
		s.mu.Unlock()
		return nil
	}
	snap := s.snapshotLocked(now)
	s.mu.Unlock()
	return s.write(snap)
}

// Flush writes pending changes.
func (s *Store) Flush() error {
	s.mu.Lock()
	if !s.dirty {
		s.mu.Unlock()
		return nil
	}
	snap := s.snapshotLocked(s.now())
	s.mu.Unlock()
	return s.write(snap)
}

func (s *Store) snapshotLocked(now time.Time) snapshot {
	s.seq++
	s.dirty, s.lastFlush = false, now
	return snapshot{seq: s.seq, sessions: s.listLocked()}
}

// write puts snap on disk unless a newer snapshot (which holds every change
// snap holds) is there already. On failure the next Touch tries again.
func (s *Store) write(snap snapshot) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if snap.seq <= s.written {
		return nil
	}
	err := s.writeFile(snap)
	if err != nil {
		s.mu.Lock()
		s.dirty, s.lastFlush = true, time.Time{}
		s.mu.Unlock()
		return err
	}
	s.written = snap.seq
	return nil
}

func (s *Store) writeFile(snap snapshot) error {
	b, err := json.MarshalIndent(file{Version: fileVersion, Sessions: snap.sessions}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode session index: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return fmt.Errorf("create session dir: %w", err)
	}
	if err := atomicfile.WriteFile(s.path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write session index: %w", err)
	}
	return nil
}

// List returns the sessions sorted by key.
func (s *Store) List() []Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.listLocked()
}

func (s *Store) listLocked() []Session {
	out := make([]Session, 0, len(s.m))
	for _, x := range s.m {
		out = append(out, x)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}
