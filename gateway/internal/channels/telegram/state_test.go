package telegram

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/gateway/internal/channels"
	"github.com/moltbot/moltbot-secure/gateway/internal/channels/telegram/telegramtest"
	"github.com/moltbot/moltbot-secure/gateway/internal/inbox"
)

// A long-polling adapter is connected as soon as Telegram accepts its first
// poll, not after the first long poll ends; a failed poll shows the error
// (without the token) and when it retries.
func TestStateIsTruthful(t *testing.T) {
	fake := telegramtest.NewServer(token)
	defer fake.Close()
	t0 := time.Now()
	// A 30 s long poll: connected must not wait for it.
	bot, _, _ := start(t, Config{BaseURL: fake.URL(), PollTimeout: 30 * time.Second, MinBackoff: 3 * time.Second})
	require.Eventually(t, func() bool { return bot.State().Connected }, 2*time.Second, 5*time.Millisecond)
	st := bot.State()
	require.NoError(t, st.Err)
	require.False(t, st.LastOK.Before(t0))
	require.True(t, st.NextRetry.IsZero())

	// The next poll fails: the bot is in a 30 s long poll now, so wake it
	// with an update; the poll after that one gets the failure.
	fake.FailNext(telegramtest.Failure{Method: "getUpdates", ErrorCode: 502, Description: "Bad Gateway"})
	fake.SendDM(42, "", "wake up")
	require.Eventually(t, func() bool { return bot.State().Err != nil }, 5*time.Second, 5*time.Millisecond)
	st = bot.State()
	require.False(t, st.Connected)
	require.ErrorContains(t, st.Err, "getUpdates: 502 Bad Gateway")
	require.NotContains(t, st.Err.Error(), token)
	require.False(t, st.LastOK.IsZero(), "the last good poll is kept")
	require.WithinDuration(t, time.Now().Add(3*time.Second), st.NextRetry, time.Second)

	// The retry succeeds (a quick poll): connected again, error cleared.
	require.Eventually(t, func() bool { return bot.State().Connected }, 6*time.Second, 10*time.Millisecond)
	st = bot.State()
	require.NoError(t, st.Err)
	require.True(t, st.NextRetry.IsZero())
}

func TestStateBeforeAnyPoll(t *testing.T) {
	bot, err := New(Config{Token: token, BaseURL: "http://127.0.0.1:1"})
	require.NoError(t, err)
	require.Equal(t, channels.State{}, bot.State())
}

type recorder struct {
	mu   sync.Mutex
	seen map[string]int          // text -> deliveries
	held map[string]channels.Ack // acks not yet called
	hold func(text string) bool
	ch   chan struct{}
}

func newRecorder(hold func(string) bool) *recorder {
	return &recorder{seen: map[string]int{}, held: map[string]channels.Ack{}, hold: hold, ch: make(chan struct{}, 100)}
}

func (r *recorder) deliver(_ context.Context, in channels.Inbound, ack channels.Ack) {
	r.mu.Lock()
	r.seen[in.Text]++
	if r.hold(in.Text) {
		r.held[in.Text] = ack
	} else {
		ack(true)
	}
	r.mu.Unlock()
	r.ch <- struct{}{}
}

func (r *recorder) count(text string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[text]
}

func runBot(t *testing.T, fake *telegramtest.Server, q *inbox.Inbox, r *recorder) (stop func()) {
	t.Helper()
	bot, err := New(Config{Token: token, BaseURL: fake.URL(), PollTimeout: time.Second, MinBackoff: 20 * time.Millisecond, Inbox: q})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- bot.Start(ctx, r.deliver) }()
	return func() { cancel(); require.NoError(t, <-done) }
}

func rawDM(id, from int64, text string) []byte {
	return fmt.Appendf(nil, `{"update_id":%d,"message":{"message_id":%d,"from":{"id":%d,"is_bot":false,"first_name":"U"},"chat":{"id":%d,"type":"private"},"date":1,"text":%q}}`, id, id, from, from, text)
}

// A gateway killed while it processes a message: what was stored and not
// finished is processed after the restart (at least once); what was
// finished is not processed again, even when Telegram sends it again.
func TestKillDuringProcessingAtLeastOnceNoDuplicates(t *testing.T) {
	fake := telegramtest.NewServer(token)
	defer fake.Close()
	path := filepath.Join(t.TempDir(), "inbound.db")
	q, err := inbox.Open(path)
	require.NoError(t, err)

	r1 := newRecorder(func(text string) bool { return text == "slow" })
	stop := runBot(t, fake, q, r1)
	_, err = fake.AddUpdate(rawDM(100, 1, "done before the kill"))
	require.NoError(t, err)
	_, err = fake.AddUpdate(rawDM(101, 2, "slow"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return r1.count("slow") == 1 && r1.count("done before the kill") == 1 }, 5*time.Second, 5*time.Millisecond)
	// Both are stored, so the next poll confirmed them: Telegram forgets them.
	polls := fake.Polls()
	require.Eventually(t, func() bool { return fake.Polls() > polls }, 5*time.Second, 5*time.Millisecond)
	// The kill: the adapter stops and the process's claims vanish, "slow" never acked.
	stop()
	require.NoError(t, q.Close())

	// Telegram sends both again (as after a crash before the offset went out), plus a new one.
	for _, raw := range [][]byte{rawDM(100, 1, "done before the kill"), rawDM(101, 2, "slow"), rawDM(102, 3, "new")} {
		_, err = fake.AddUpdate(raw)
		require.NoError(t, err)
	}
	q, err = inbox.Open(path)
	require.NoError(t, err)
	defer q.Close()
	r2 := newRecorder(func(string) bool { return false })
	stop = runBot(t, fake, q, r2)
	defer stop()
	require.Eventually(t, func() bool { return r2.count("new") == 1 && r2.count("slow") == 1 }, 5*time.Second, 5*time.Millisecond)
	polls = fake.Polls()
	require.Eventually(t, func() bool { return fake.Polls() > polls+1 }, 5*time.Second, 5*time.Millisecond)
	require.Equal(t, 0, r2.count("done before the kill"), "a finished update is not processed again")
	require.Equal(t, 1, r2.count("slow"), "the unfinished update is processed once more, not twice")
	p, _, err := q.Counts("telegram/123456")
	require.NoError(t, err)
	require.Zero(t, p, "everything finished is removed from the inbox")
}

func TestInboxAccountNeverHoldsTheSecret(t *testing.T) {
	require.Equal(t, "telegram/123456", inboxAccount("telegram", token))
	for _, tok := range []string{"no-colon-secret-token", "abc:def"} {
		a := inboxAccount("telegram", tok)
		require.NotContains(t, a, "secret")
		require.NotContains(t, a, "abc")
		require.Regexp(t, `^telegram/sha256-[0-9a-f]{16}$`, a)
	}
}
