package pairing

import (
	"fmt"
	"time"

	"github.com/moltbot/moltbot-secure/services/errs"
)

// Lockout design (wrong codes on Approve/Reject):
//
//   - Failures count per caller key (the API passes the verified peer
//     identity, so "gateway" and "cli" are separate keys). A brute-forcer that
//     got hold of the gateway's path therefore locks out only the gateway; the
//     operator's CLI keeps working.
//   - MaxFailures wrong codes within FailureWindow lock the key for
//     LockoutBase, doubling with each consecutive lockout up to LockoutMax.
//     Attempts during a lockout are refused without being checked and do not
//     extend it, so any lockout ends within LockoutMax and the right code
//     works again afterwards: the operator cannot be locked out for ever.
//   - The escalation level decays after 2*LockoutMax without failures and
//     resets on a correct code.
//
// Worst case at the cap: MaxFailures guesses per LockoutMax (10 per 15 min,
// ~960 a day) against at most 3 live codes in 32^8 ~ 1.1e12, each living 1 h:
// a success chance around 1e-9 a day. State is in memory: only authenticated
// service identities reach Approve, and they cannot restart pairingd.

// LockedError is returned while a caller is locked out. It wraps
// errs.ErrResourceExhausted; RetryAfter says when to try again.
type LockedError struct {
	RetryAfter time.Duration
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("too many wrong pairing codes; retry after %s", e.RetryAfter.Round(time.Second))
}

func (e *LockedError) Unwrap() error { return errs.ErrResourceExhausted }

type attempts struct {
	windowStart time.Time
	count       int
	lastFailure time.Time
	lockedUntil time.Time
	level       int
}

// maxLockoutKeys bounds the table; keys are service identities, so this is
// only reached by a caller inventing keys, and then idle entries go first.
const maxLockoutKeys = 10000

type limiter struct {
	maxFailures int
	window      time.Duration
	base, max   time.Duration
	keys        map[string]*attempts
}

func (l *limiter) check(key string, now time.Time) error {
	a := l.keys[key]
	if a == nil || !now.Before(a.lockedUntil) {
		return nil
	}
	return &LockedError{RetryAfter: a.lockedUntil.Sub(now)}
}

// fail records a wrong code and reports whether it engaged a lockout.
func (l *limiter) fail(key string, now time.Time) bool {
	a := l.keys[key]
	if a == nil {
		if len(l.keys) >= maxLockoutKeys {
			l.prune(now)
		}
		a = &attempts{windowStart: now}
		l.keys[key] = a
	}
	if a.level > 0 && now.Sub(a.lastFailure) > 2*l.max {
		a.level = 0
	}
	if now.Sub(a.windowStart) > l.window {
		a.windowStart, a.count = now, 0
	}
	a.count++
	a.lastFailure = now
	if a.count < l.maxFailures {
		return false
	}
	d := l.base << a.level
	if d > l.max || d <= 0 {
		d = l.max
	} else if a.level < 30 {
		a.level++
	}
	a.lockedUntil = now.Add(d)
	a.windowStart, a.count = now, 0
	return true
}

func (l *limiter) succeed(key string) { delete(l.keys, key) }

func (l *limiter) prune(now time.Time) {
	for k, a := range l.keys {
		if !now.Before(a.lockedUntil) && now.Sub(a.lastFailure) > l.window {
			delete(l.keys, k)
		}
	}
}
