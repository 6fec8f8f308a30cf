package pairing

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/pairingd/internal/store"
	"github.com/moltbot/moltbot-secure/services/errs"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openStore(t testing.TB) *store.Bolt {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "credentials", "pairing.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func newService(t testing.TB, mod func(*Config)) (*Service, *store.Bolt, *fakeClock) {
	t.Helper()
	st := openStore(t)
	clk := newClock()
	cfg := Config{Store: st, Now: clk.Now}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	require.NoError(t, err)
	return s, st, clk
}

func TestRequestValidation(t *testing.T) {
	big := map[string]string{}
	for i := 0; i < 20; i++ {
		big[fmt.Sprintf("k%d", i)] = "v"
	}
	tests := []struct {
		name    string
		channel string
		sender  string
		meta    map[string]string
		field   string
	}{
		{"empty channel", "", "42", nil, "channel"},
		{"upper-case channel", "Telegram", "42", nil, "channel"},
		{"path channel", "../x", "42", nil, "channel"},
		{"long channel", strings.Repeat("a", 33), "42", nil, "channel"},
		{"empty sender", "telegram", "", nil, "sender_id"},
		{"blank sender", "telegram", "  ", nil, "sender_id"},
		{"long sender", "telegram", strings.Repeat("1", 300), nil, "sender_id"},
		{"control sender", "telegram", "a\x1b[2J", nil, "sender_id"},
		{"bidi override sender", "telegram", "42\u202E24", nil, "sender_id"},
		{"bidi isolate sender", "telegram", "\u2066alice\u2069", nil, "sender_id"},
		{"zero-width sender", "telegram", "ali\u200Bce", nil, "sender_id"},
		{"bidi meta", "telegram", "42", map[string]string{"name": "\u202Eevil"}, "meta"},
		{"too many meta", "telegram", "42", big, "meta"},
		{"long meta value", "telegram", "42", map[string]string{"name": strings.Repeat("x", 300)}, "meta"},
		{"invalid utf8 meta", "telegram", "42", map[string]string{"name": "\xff"}, "meta"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, st, _ := newService(t, nil)
			_, err := s.Request(context.Background(), tc.channel, tc.sender, tc.meta)
			require.ErrorIs(t, err, errs.ErrInvalidArgument)
			require.Contains(t, err.Error(), tc.field)
			p, err := st.ListPending("")
			require.NoError(t, err)
			require.Empty(t, p, "nothing stored")
		})
	}
}

func TestUnknownChannelWhenConfigured(t *testing.T) {
	s, _, _ := newService(t, func(c *Config) { c.Channels = []string{"telegram", "local"} })
	_, err := s.Request(context.Background(), "discord", "1", nil)
	require.ErrorIs(t, err, errs.ErrInvalidArgument)
	require.Contains(t, err.Error(), `channel "discord": unknown`)
	_, err = s.Request(context.Background(), "local", "1", nil)
	require.NoError(t, err)
}

func TestCodeFormat(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"ABCD2345", "ABCD2345", false},
		{" abcd2345 ", "ABCD2345", false},
		{"ABCD234", "", true},
		{"ABCD23450", "", true},
		{"ABCD2340", "", true}, // 0 is not in the alphabet
		{"ABCDI345", "", true},
		{"", "", true},
		{"ÄBCD2345", "", true},
	}
	for _, tc := range tests {
		got, err := NormalizeCode(tc.in)
		if tc.wantErr {
			require.ErrorIs(t, err, errs.ErrInvalidArgument, tc.in)
			require.Contains(t, err.Error(), "code")
			continue
		}
		require.NoError(t, err)
		require.Equal(t, tc.want, got)
	}
}

func TestRequestResendQueueFullExpiry(t *testing.T) {
	ctx := context.Background()
	s, st, clk := newService(t, nil)
	sub, err := s.Watch("telegram", 0)
	require.NoError(t, err)
	defer sub.Close()

	r1, err := s.Request(ctx, "telegram", "100", map[string]string{"username": "alice"})
	require.NoError(t, err)
	require.True(t, r1.Created)
	require.True(t, r1.ResendAllowed)
	require.Len(t, r1.Code, CodeLength)
	_, err = NormalizeCode(r1.Code)
	require.NoError(t, err)
	require.Equal(t, clk.Now().Add(time.Hour), r1.ExpiresAt)
	require.Equal(t, EventRequested, (<-sub.C()).Kind)

	// Same sender again, too soon: same code, no second reply.
	clk.Add(10 * time.Second)
	r2, err := s.Request(ctx, "telegram", "100", nil)
	require.NoError(t, err)
	require.Equal(t, r1.Code, r2.Code)
	require.False(t, r2.Created)
	require.False(t, r2.ResendAllowed)

	// After the interval: same code, a reply is allowed once more.
	clk.Add(DefaultResendInterval)
	r3, err := s.Request(ctx, "telegram", "100", nil)
	require.NoError(t, err)
	require.Equal(t, r1.Code, r3.Code)
	require.True(t, r3.ResendAllowed)
	r3b, err := s.Request(ctx, "telegram", "100", nil)
	require.NoError(t, err)
	require.False(t, r3b.ResendAllowed)

	codes := map[string]bool{r1.Code: true}
	for _, id := range []string{"101", "102"} {
		r, err := s.Request(ctx, "telegram", id, nil)
		require.NoError(t, err)
		require.True(t, r.Created)
		require.False(t, codes[r.Code], "codes unique")
		codes[r.Code] = true
		require.Equal(t, EventRequested, (<-sub.C()).Kind)
	}

	// 4th sender: queue full, told once, pending ones kept, watchers told.
	r4, err := s.Request(ctx, "telegram", "103", nil)
	require.NoError(t, err)
	require.True(t, r4.QueueFull)
	require.Empty(t, r4.Code)
	require.True(t, r4.ResendAllowed)
	ev := <-sub.C()
	require.Equal(t, EventQueueFull, ev.Kind)
	require.Equal(t, "103", ev.Request.SenderID)
	r4b, err := s.Request(ctx, "telegram", "103", nil)
	require.NoError(t, err)
	require.True(t, r4b.QueueFull)
	require.False(t, r4b.ResendAllowed, "queue-full reply is rate limited too")
	select {
	case ev := <-sub.C():
		t.Fatalf("unexpected event %v", ev.Kind)
	default:
	}

	list, full, err := s.List(ctx, "")
	require.NoError(t, err)
	require.Len(t, list, 3)
	require.Equal(t, []string{"telegram"}, full)

	// Another channel has its own queue.
	rl, err := s.Request(ctx, "local", "103", nil)
	require.NoError(t, err)
	require.True(t, rl.Created)

	// An hour later the codes expire and the queue has room again.
	clk.Add(time.Hour)
	r5, err := s.Request(ctx, "telegram", "103", nil)
	require.NoError(t, err)
	require.True(t, r5.Created)
	var expired int
	for len(sub.C()) > 0 {
		if (<-sub.C()).Kind == EventExpired {
			expired++
		}
	}
	require.Equal(t, 3, expired)
	p, err := st.ListPending("telegram")
	require.NoError(t, err)
	require.Len(t, p, 1)
	_, err = s.Approve(ctx, "cli", "telegram", r1.Code)
	require.ErrorIs(t, err, errs.ErrNotFound, "expired code")
}

func TestApproveRejectRevoke(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newService(t, nil)
	r, err := s.Request(ctx, "telegram", "100", map[string]string{"username": "alice"})
	require.NoError(t, err)
	r2, err := s.Request(ctx, "telegram", "200", nil)
	require.NoError(t, err)

	// A code from one channel is no good on another.
	_, err = s.Approve(ctx, "cli", "local", r.Code)
	require.ErrorIs(t, err, errs.ErrNotFound)

	res, err := s.Approve(ctx, "cli", "telegram", strings.ToLower(r.Code))
	require.NoError(t, err)
	require.Equal(t, "100", res.SenderID)
	require.Equal(t, "alice", res.Meta["username"])
	ok, err := s.IsAllowed(ctx, "telegram", "100")
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = s.IsAllowed(ctx, "local", "100")
	require.NoError(t, err)
	require.False(t, ok)
	_, err = s.Approve(ctx, "cli", "telegram", r.Code)
	require.ErrorIs(t, err, errs.ErrNotFound, "a code works once")
	_, err = s.Request(ctx, "telegram", "100", nil)
	require.ErrorIs(t, err, errs.ErrAlreadyExists)

	al, err := s.ListAllowed(ctx, "")
	require.NoError(t, err)
	require.Len(t, al, 1)
	require.Equal(t, "telegram", al[0].Channel)

	sender, err := s.Reject(ctx, "cli", "telegram", r2.Code)
	require.NoError(t, err)
	require.Equal(t, "200", sender)
	ok, err = s.IsAllowed(ctx, "telegram", "200")
	require.NoError(t, err)
	require.False(t, ok)
	list, _, err := s.List(ctx, "telegram")
	require.NoError(t, err)
	require.Empty(t, list)

	require.NoError(t, s.Revoke(ctx, "telegram", "100"))
	ok, err = s.IsAllowed(ctx, "telegram", "100")
	require.NoError(t, err)
	require.False(t, ok)
	require.ErrorIs(t, s.Revoke(ctx, "telegram", "100"), errs.ErrNotFound)
	// Revoked: asking again yields a fresh code.
	r3, err := s.Request(ctx, "telegram", "100", nil)
	require.NoError(t, err)
	require.True(t, r3.Created)

	_, err = s.Approve(ctx, "cli", "telegram", "bad")
	require.ErrorIs(t, err, errs.ErrInvalidArgument)
	require.ErrorIs(t, s.Revoke(ctx, "telegram", ""), errs.ErrInvalidArgument)
}

// repeatReader returns the same block first, then crypto/rand: the second
// code drawn collides with the first and must be redrawn.
type repeatReader struct {
	n     int
	block []byte
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.n < 2 {
		r.n++
		return copy(p, r.block), nil
	}
	return rand.Read(p)
}

func TestCodesUniqueWithInjectedRand(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newService(t, func(c *Config) { c.Rand = &repeatReader{block: bytes.Repeat([]byte{0}, CodeLength)} })
	a, err := s.Request(ctx, "telegram", "1", nil)
	require.NoError(t, err)
	require.Equal(t, "AAAAAAAA", a.Code)
	b, err := s.Request(ctx, "telegram", "2", nil)
	require.NoError(t, err)
	require.NotEqual(t, a.Code, b.Code)

	broken, _, _ := newService(t, func(c *Config) { c.Rand = io.LimitReader(nil, 0) })
	_, err = broken.Request(ctx, "telegram", "1", nil)
	require.Error(t, err)
}

func TestBruteForce10000(t *testing.T) {
	ctx := context.Background()
	s, _, clk := newService(t, nil)
	r, err := s.Request(ctx, "telegram", "100", nil)
	require.NoError(t, err)

	var successes, notFound, locked, checkedWhileOpen int
	buf := make([]byte, CodeLength)
	for i := 0; i < 10000; i++ {
		_, _ = rand.Read(buf)
		for j := range buf {
			buf[j] = Alphabet[buf[j]&31]
		}
		guess := string(buf)
		if guess == r.Code {
			continue
		}
		_, err := s.Approve(ctx, "gateway", "telegram", guess)
		switch {
		case err == nil:
			successes++
		case errors.Is(err, errs.ErrResourceExhausted):
			locked++
			_, isLock := IsLocked(err)
			require.True(t, isLock)
		case errors.Is(err, errs.ErrNotFound):
			notFound++
			checkedWhileOpen++
		default:
			t.Fatalf("unexpected error: %v", err)
		}
		clk.Add(100 * time.Millisecond) // 10,000 tries over ~17 minutes
	}
	t.Logf("10000 wrong codes: %d successes, %d checked, %d refused by lockout", successes, notFound, locked)
	require.Zero(t, successes)
	require.Positive(t, locked)
	// Over 1000 s at most 10 + a few more rounds after short lockouts get checked.
	require.LessOrEqual(t, checkedWhileOpen, 60)

	// The attacker's key is locked now; the operator's CLI is not.
	_, err = s.Approve(ctx, "gateway", "telegram", r.Code)
	require.ErrorIs(t, err, errs.ErrResourceExhausted)
	wait, _ := IsLocked(err)
	require.LessOrEqual(t, wait, DefaultLockoutMax)

	// Once the lockout expires the right code still works, even for that caller.
	clk.Add(wait)
	res, err := s.Approve(ctx, "gateway", "telegram", r.Code)
	require.NoError(t, err)
	require.Equal(t, "100", res.SenderID)
}

func TestLockoutBoundedAndPerCaller(t *testing.T) {
	ctx := context.Background()
	s, _, clk := newService(t, nil)
	r, err := s.Request(ctx, "telegram", "100", nil)
	require.NoError(t, err)
	wrong := "ZZZZZZZZ"
	if r.Code == wrong {
		wrong = "YYYYYYYY"
	}
	var lockouts []time.Duration
	for round := 0; round < 6; round++ {
		for i := 0; i < DefaultMaxFailures; i++ {
			_, err := s.Approve(ctx, "gateway", "telegram", wrong)
			require.ErrorIs(t, err, errs.ErrNotFound)
		}
		_, err := s.Approve(ctx, "gateway", "telegram", wrong)
		d, ok := IsLocked(err)
		require.True(t, ok)
		lockouts = append(lockouts, d)
		// Hammering while locked does not extend the lockout.
		for i := 0; i < 100; i++ {
			_, err := s.Approve(ctx, "gateway", "telegram", wrong)
			d2, ok := IsLocked(err)
			require.True(t, ok)
			require.Equal(t, d, d2)
		}
		// The CLI is a separate key and is unaffected.
		_, err = s.Reject(ctx, "cli", "telegram", wrong)
		require.ErrorIs(t, err, errs.ErrNotFound)
		clk.Add(d)
	}
	require.Equal(t, []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 15 * time.Minute, 15 * time.Minute}, lockouts)
	// Still within the code's hour? 1+2+4+8+15+15 = 45 min: yes.
	_, err = s.Approve(ctx, "gateway", "telegram", r.Code)
	require.NoError(t, err)
}

func TestWatchSlowSubscriberDropped(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newService(t, func(c *Config) { c.MaxPending = 100 })
	slow, err := s.Watch("", 2)
	require.NoError(t, err)
	fast, err := s.Watch("telegram", 100)
	require.NoError(t, err)
	other, err := s.Watch("local", 1)
	require.NoError(t, err)
	defer fast.Close()
	defer other.Close()
	for i := 0; i < 5; i++ {
		_, err := s.Request(ctx, "telegram", fmt.Sprint(i), nil)
		require.NoError(t, err, "a stuck watcher never blocks the service")
	}
	require.True(t, slow.Dropped())
	n := 0
	for range slow.C() { // closed after its 2 buffered events
		n++
	}
	require.Equal(t, 2, n)
	require.False(t, fast.Dropped())
	require.Len(t, fast.C(), 5)
	require.Len(t, other.C(), 0, "filtered by channel")
	slow.Close() // idempotent
}

func TestConcurrentRequestsKeepLimit(t *testing.T) {
	ctx := context.Background()
	s, st, _ := newService(t, nil)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := s.Request(ctx, "telegram", fmt.Sprint(i), nil)
			require.NoError(t, err)
		}(i)
	}
	wg.Wait()
	p, err := st.ListPending("telegram")
	require.NoError(t, err)
	require.Len(t, p, DefaultMaxPending)
}
