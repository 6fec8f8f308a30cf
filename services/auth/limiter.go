package auth

import (
	"sync"
	"time"
)

// Limiter counts failed authentications per client address. Only failures
// count (a limiter that counts successes lets one busy client behind a proxy
// lock out everyone else). After Max failures inside Window the address is
// locked out for Lockout; while locked out every call from it is refused,
// right token or not, so the lockout cannot be used as an oracle.
type Limiter struct {
	Max     int
	Window  time.Duration
	Lockout time.Duration
	// MaxEntries bounds memory under a spray of addresses; the oldest
	// unlocked entries are dropped first.
	MaxEntries int
	Now        func() time.Time

	mu      sync.Mutex
	entries map[string]*limitEntry
}

type limitEntry struct {
	fails       []time.Time
	lockedUntil time.Time
}

// NewLimiter returns the default policy: 10 failures per 60 s, then 60 s lockout.
func NewLimiter() *Limiter {
	return &Limiter{Max: 10, Window: time.Minute, Lockout: time.Minute, MaxEntries: 65536, Now: time.Now}
}

// Blocked reports whether addr is locked out and for how long still.
func (l *Limiter) Blocked(addr string) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entries[addr]
	if e == nil {
		return 0, false
	}
	now := l.Now()
	if now.Before(e.lockedUntil) {
		return e.lockedUntil.Sub(now), true
	}
	return 0, false
}

// Fail records a failure and reports whether addr is now locked out.
func (l *Limiter) Fail(addr string) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.entries == nil {
		l.entries = make(map[string]*limitEntry)
	}
	now := l.Now()
	e := l.entries[addr]
	if e == nil {
		if len(l.entries) >= l.MaxEntries {
			l.evict(now)
		}
		e = &limitEntry{}
		l.entries[addr] = e
	}
	cut := now.Add(-l.Window)
	kept := e.fails[:0]
	for _, t := range e.fails {
		if t.After(cut) {
			kept = append(kept, t)
		}
	}
	e.fails = append(kept, now)
	if len(e.fails) >= l.Max {
		e.lockedUntil = now.Add(l.Lockout)
		e.fails = e.fails[:0]
	}
	if now.Before(e.lockedUntil) {
		return e.lockedUntil.Sub(now), true
	}
	return 0, false
}

// evict drops entries that are neither locked nor recent.
func (l *Limiter) evict(now time.Time) {
	cut := now.Add(-l.Window)
	for k, e := range l.entries {
		if now.Before(e.lockedUntil) {
			continue
		}
		if len(e.fails) == 0 || e.fails[len(e.fails)-1].Before(cut) {
			delete(l.entries, k)
		}
	}
	if len(l.entries) < l.MaxEntries {
		return
	}
	for k, e := range l.entries { // still full: drop unlocked entries at random
		if !now.Before(e.lockedUntil) {
			delete(l.entries, k)
			if len(l.entries) < l.MaxEntries {
				return
			}
		}
	}
}
