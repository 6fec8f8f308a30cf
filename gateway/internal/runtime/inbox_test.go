package runtime

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/gateway/internal/agent"
	"github.com/moltbot/moltbot-secure/gateway/internal/channels/telegram/telegramtest"
	"github.com/moltbot/moltbot-secure/gateway/internal/inbox"
)

type countingAgent struct {
	echoAgent
	calls atomic.Int32
}

func (c *countingAgent) Reply(ctx context.Context, t agent.Turn) (string, error) {
	c.calls.Add(1)
	return c.echoAgent.Reply(ctx, t)
}

// A reload while a Telegram message is in the agent: the new runtime's
// adapter does not replay the update the old runtime still processes (the
// inbox claims it), and the update is answered once.
func TestReloadDoesNotReplayInFlightUpdate(t *testing.T) {
	fake := telegramtest.NewServer(botToken)
	defer fake.Close()
	q, err := inbox.Open(filepath.Join(t.TempDir(), "inbound.db"))
	require.NoError(t, err)
	defer q.Close()
	ag := &countingAgent{echoAgent: echoAgent{gate: make(chan struct{})}}
	d := deps(t, ag)
	d.Inbox = q
	withTelegram := func() map[string]any {
		return set(base(), "channels.telegram", map[string]any{"enabled": true, "botToken": botToken, "baseUrl": fake.URL(),
			"dm": map[string]any{"policy": "allowlist", "allowFrom": []any{"42"}}})
	}
	m := newManager(t, d, cfg(t, withTelegram()))
	fake.SendDM(42, "carol", "slow one")
	require.Eventually(t, func() bool { return ag.calls.Load() == 1 }, 10*time.Second, 5*time.Millisecond)

	_, err = m.Apply(context.Background(), cfg(t, set(withTelegram(), "channels.local.dm.allowFrom", []any{"alice"})), plainSecret)
	require.NoError(t, err)
	close(ag.gate)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sent, err := fake.WaitSent(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, "echo: slow one", sent[0].Text)
	time.Sleep(300 * time.Millisecond) // a wrong replay would reach the agent now
	require.Equal(t, int32(1), ag.calls.Load(), "the in-flight update was replayed by the new runtime")
	require.Len(t, fake.Sent(), 1)
	pending, done, err := q.Counts("telegram/123456")
	require.NoError(t, err)
	require.Zero(t, pending)
	require.Equal(t, 1, done)
}
