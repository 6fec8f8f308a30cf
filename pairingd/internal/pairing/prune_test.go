package pairing

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/services/errs"
)

// The lockout table's pruning (run when it holds maxLockoutKeys callers)
// drops only callers neither locked nor seen within the window: a guesser
// cannot clear its lockout or its count by flooding the table.
func TestLockoutPruneKeepsLockedAndRecent(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	l := limiter{maxFailures: 3, window: time.Minute, base: time.Minute, max: 15 * time.Minute, keys: map[string]*attempts{
		"locked":       {lastFailure: now.Add(-time.Hour), lockedUntil: now.Add(time.Second)},
		"recent":       {lastFailure: now.Add(-30 * time.Second), count: 2},
		"edge":         {lastFailure: now.Add(-time.Minute), count: 1}, // exactly one window ago: kept
		"stale":        {lastFailure: now.Add(-time.Minute - time.Nanosecond), count: 2},
		"lock-expired": {lastFailure: now.Add(-time.Hour), lockedUntil: now},
	}}
	l.prune(now)
	var kept []string
	for k := range l.keys {
		kept = append(kept, k)
	}
	require.ElementsMatch(t, []string{"locked", "recent", "edge"}, kept)

	// Through fail: a full table prunes before adding the newcomer.
	for i := range maxLockoutKeys {
		l.keys[fmt.Sprintf("old-%d", i)] = &attempts{lastFailure: now.Add(-time.Hour)}
	}
	l.fail("newcomer", now)
	require.Contains(t, l.keys, "locked")
	require.Contains(t, l.keys, "newcomer")
	require.NotContains(t, l.keys, "old-0")
	require.Len(t, l.keys, 4)
}

// The "queue full" reply memory is pruned once it holds 1024 senders:
// entries whose resend interval has passed go, the rest stay.
func TestFullReplayPrune(t *testing.T) {
	s, _, clk := newService(t, nil)
	now := clk.Now()
	for i := range 1023 {
		s.fullReplay[fmt.Sprintf("old-%d", i)] = now.Add(-time.Hour)
	}
	s.pruneFullReplay(now)
	require.Len(t, s.fullReplay, 1023, "below 1024 nothing is pruned")
	s.fullReplay["due"] = now.Add(-DefaultResendInterval)                     // exactly due: pruned
	s.fullReplay["fresh"] = now.Add(-DefaultResendInterval + time.Nanosecond) // not yet: kept
	s.pruneFullReplay(now)
	require.Len(t, s.fullReplay, 1)
	require.Contains(t, s.fullReplay, "fresh")
}

func TestListAllowedByChannel(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newService(t, nil)
	for _, ch := range []string{"telegram", "local"} {
		r, err := s.Request(ctx, ch, "7", nil)
		require.NoError(t, err)
		_, err = s.Approve(ctx, "cli", ch, r.Code)
		require.NoError(t, err)
	}
	all, err := s.ListAllowed(ctx, "")
	require.NoError(t, err)
	require.Len(t, all, 2)
	tg, err := s.ListAllowed(ctx, "telegram")
	require.NoError(t, err)
	require.Len(t, tg, 1)
	require.Equal(t, "telegram", tg[0].Channel)
	_, err = s.ListAllowed(ctx, "Bad Channel")
	require.ErrorIs(t, err, errs.ErrInvalidArgument)
}
