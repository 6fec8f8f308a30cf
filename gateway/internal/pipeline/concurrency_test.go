package pipeline

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/gateway/internal/agent"
	"github.com/moltbot/moltbot-secure/gateway/internal/channels/local"
	"github.com/moltbot/moltbot-secure/gateway/internal/channels/telegram"
	"github.com/moltbot/moltbot-secure/gateway/internal/channels/telegram/telegramtest"
	"github.com/moltbot/moltbot-secure/gateway/internal/dispatch"
	"github.com/moltbot/moltbot-secure/gateway/internal/inbox"
	"github.com/moltbot/moltbot-secure/gateway/internal/policy"
	"github.com/moltbot/moltbot-secure/gateway/internal/sessions"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// barrier is the agent boundary held: a turn whose text starts with "hold"
// waits until release is closed (a long sandbox command); others answer
// "pong: <text>" at once.
type barrier struct {
	release chan struct{}
	held    chan string
	slow    time.Duration // "slow" turns sleep this long

	mu    sync.Mutex
	order []string
}

func newBarrier() *barrier {
	return &barrier{release: make(chan struct{}), held: make(chan string, 10)}
}

func (b *barrier) Reply(ctx context.Context, t agent.Turn) (string, error) {
	b.mu.Lock()
	b.order = append(b.order, t.Text)
	b.mu.Unlock()
	switch {
	case strings.HasPrefix(t.Text, "hold"):
		b.held <- t.Text
		select {
		case <-b.release:
		case <-ctx.Done():
			return "", ctx.Err()
		}
		return "done: " + t.Text, nil
	case t.Text == "slow":
		time.Sleep(b.slow)
		return "done: slow", nil
	}
	return "pong: " + t.Text, nil
}

func (b *barrier) seen() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.order...)
}

func startPipeline(t *testing.T, cfg Config) *Pipeline {
	t.Helper()
	eng, err := policy.New(policy.EngineConfig{Pairing: &allowAll{}})
	require.NoError(t, err)
	st, err := sessions.Open(filepath.Join(t.TempDir(), "sessions.json"), nil)
	require.NoError(t, err)
	cfg.Engine, cfg.Sessions = eng, st
	p, err := New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Start(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	require.Eventually(t, func() bool {
		for _, c := range p.Channels() {
			if !c.Connected {
				return false
			}
		}
		return true
	}, 5*time.Second, time.Millisecond)
	return p
}

// allowAll is pairingd with every sender approved.
type allowAll struct{}

func (allowAll) Request(context.Context, string, string, map[string]string) (policy.RequestResult, error) {
	return policy.RequestResult{}, errs.ErrFailedPrecondition
}
func (allowAll) IsAllowed(context.Context, string, string) (bool, error) { return true, nil }

// One session's turn held at the agent does not hold other sessions; the
// session's own later message waits behind it, in order; a full queue is
// answered "busy", not dropped.
func TestLocalSessionsRunConcurrentlyInOrder(t *testing.T) {
	ag := newBarrier()
	p := startPipeline(t, Config{Channels: []Channel{{Channel: local.New()}}, Agent: ag,
		Inbound: dispatch.Limits{Workers: 4, QueueLen: 1}})
	ctx := context.Background()

	type out struct {
		r   Result
		err error
	}
	send := func(from, text string) chan out {
		c := make(chan out, 1)
		go func() {
			r, err := p.SendLocal(ctx, Message{From: from, Text: text})
			c <- out{r, err}
		}()
		return c
	}
	firstC := send("alice", "hold 1")
	require.Equal(t, "hold 1", <-ag.held)
	secondC := send("alice", "after")
	require.Eventually(t, func() bool { _, j := p.disp.Stats(); return j == 2 }, 5*time.Second, time.Millisecond)

	// Queue full (1 waiting behind the running one): busy, with the reply.
	r, err := p.SendLocal(ctx, Message{From: "alice", Text: "third"})
	require.ErrorIs(t, err, errs.ErrResourceExhausted)
	require.ErrorContains(t, err, "gateway.inbound.queuePerSession")
	require.Equal(t, DecisionBusy, r.Decision)

	// 20 other senders are answered while alice's turn is held.
	for i := range 20 {
		from := "user" + strconv.Itoa(i)
		r, err := p.SendLocal(ctx, Message{From: from, Text: "ping " + from})
		require.NoError(t, err)
		require.Equal(t, []string{"pong: ping " + from}, r.Replies)
	}
	require.NotContains(t, ag.seen(), "after", "alice's next message waits for her first")
	require.NotContains(t, ag.seen(), "third")
	close(ag.release)
	first, second := <-firstC, <-secondC
	require.NoError(t, first.err)
	require.NoError(t, second.err)
	require.Equal(t, []string{"done: hold 1"}, first.r.Replies)
	require.Equal(t, []string{"pong: after"}, second.r.Replies)
	seen := ag.seen()
	require.Equal(t, "hold 1", seen[0])
	require.Equal(t, "after", seen[len(seen)-1])
}

func startTelegram(t *testing.T, ag agent.Agent, lim dispatch.Limits) (*telegramtest.Server, *Pipeline, *inbox.Inbox) {
	t.Helper()
	const tok = "4242:fake-token"
	fake := telegramtest.NewServer(tok)
	t.Cleanup(fake.Close)
	q, err := inbox.Open(filepath.Join(t.TempDir(), "inbound.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = q.Close() })
	bot, err := telegram.New(telegram.Config{Token: tok, BaseURL: fake.URL(), PollTimeout: 5 * time.Second, Inbox: q})
	require.NoError(t, err)
	p := startPipeline(t, Config{Channels: []Channel{{Channel: local.New()}, {Channel: bot}}, Agent: ag, Inbound: lim})
	return fake, p, q
}

func sentTexts(s []telegramtest.Sent) []string {
	var out []string
	for _, m := range s {
		out = append(out, m.ChatID+":"+m.Text)
	}
	sort.Strings(out)
	return out
}

// Through the real Telegram adapter and the fake Bot API: one chat's
// command is held at the agent, and 20 other chats are answered before it
// is released.
func TestTelegramTwentyChatsAnsweredWhileOneIsHeld(t *testing.T) {
	ag := newBarrier()
	fake, _, q := startTelegram(t, ag, dispatch.Limits{})
	fake.SendDM(1, "slowpoke", "hold this")
	select {
	case <-ag.held:
	case <-time.After(10 * time.Second):
		t.Fatal("the held command never reached the agent")
	}
	var want []string
	for i := range 20 {
		id := int64(100 + i)
		fake.SendDM(id, "", "ping")
		want = append(want, fmt.Sprintf("%d:pong: ping", id))
	}
	sort.Strings(want)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sent, err := fake.WaitSent(ctx, 20)
	require.NoError(t, err, "20 chats were not answered while one was held")
	require.Equal(t, want, sentTexts(sent), "exactly the 20 pings answered; the held chat not yet")

	close(ag.release)
	sent, err = fake.WaitSent(ctx, 21)
	require.NoError(t, err)
	require.Equal(t, "1:done: hold this", sentTexts(sent[20:])[0])
	require.Eventually(t, func() bool { n, _, _ := q.Counts("telegram/4242"); return n == 0 }, 5*time.Second, 5*time.Millisecond,
		"processed updates leave the inbound queue")
	_, done, err := q.Counts("telegram/4242")
	require.NoError(t, err)
	require.Equal(t, 21, done)
}

// A full session queue on Telegram: the sender gets the busy reply.
func TestTelegramBusyReply(t *testing.T) {
	ag := newBarrier()
	fake, _, _ := startTelegram(t, ag, dispatch.Limits{QueueLen: 1})
	fake.SendDM(7, "", "hold 1")
	<-ag.held
	fake.SendDM(7, "", "queued")
	fake.SendDM(7, "", "one too many")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sent, err := fake.WaitSent(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, "7:"+BusyReply, sentTexts(sent)[0])
	close(ag.release)
	sent, err = fake.WaitSent(ctx, 3)
	require.NoError(t, err)
	require.Equal(t, []string{"7:" + BusyReply, "7:done: hold 1", "7:pong: queued"}, []string{
		sent[0].ChatID + ":" + sent[0].Text, sent[1].ChatID + ":" + sent[1].Text, sent[2].ChatID + ":" + sent[2].Text})
}

// The measurement: one chat runs an 8 s command; another chat's
// ping is answered in under a second (it was 8.3 s before).
func TestSlowCommandDoesNotDelayOtherChats(t *testing.T) {
	if testing.Short() {
		t.Skip("8 s measurement; runs without -short")
	}
	ag := newBarrier()
	ag.slow = 8 * time.Second
	fake, _, _ := startTelegram(t, ag, dispatch.Limits{})
	fake.SendDM(1, "", "slow")
	require.Eventually(t, func() bool { return len(ag.seen()) == 1 }, 5*time.Second, time.Millisecond)
	t0 := time.Now()
	fake.SendDM(2, "", "ping")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sent, err := fake.WaitSent(ctx, 1)
	require.NoError(t, err)
	took := time.Since(t0)
	require.Equal(t, "2:pong: ping", sent[0].ChatID+":"+sent[0].Text)
	t.Logf("ping answered in %s while another chat ran an 8 s command", took)
	require.Less(t, took, time.Second)
	_, err = fake.WaitSent(ctx, 2)
	require.NoError(t, err)
}
