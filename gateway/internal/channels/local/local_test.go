package local

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/gateway/internal/channels"
	"github.com/moltbot/moltbot-secure/services/errs"
)

func startLocal(t *testing.T, deliver channels.DeliverFunc) *Channel {
	t.Helper()
	c := New()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Start(ctx, deliver) }()
	require.Eventually(t, func() bool { ok, _ := c.Status(); return ok }, 2*time.Second, time.Millisecond)
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return c
}

func TestInjectReturnsReplies(t *testing.T) {
	var c *Channel
	var seen []channels.Inbound
	c = startLocal(t, func(ctx context.Context, in channels.Inbound) {
		seen = append(seen, in)
		require.NoError(t, c.Send(ctx, in.ChatID, "echo: "+in.Text))
		require.NoError(t, c.Send(ctx, in.ChatID, "second"))
		require.NoError(t, c.Send(ctx, "someone-else", "not for alice"))
	})
	replies, err := c.Inject(context.Background(), channels.Inbound{Channel: "spoofed", SenderID: "alice", Text: "hi"})
	require.NoError(t, err)
	require.Equal(t, []string{"echo: hi", "second"}, replies)
	require.Equal(t, "local", seen[0].Channel)
	require.Equal(t, "alice", seen[0].ChatID)
	require.NotEmpty(t, seen[0].MessageID)
	require.True(t, seen[0].IsDM())

	// A reply to a chat nobody is waiting on is kept for Drain.
	require.Equal(t, []string{"not for alice"}, c.Drain("someone-else"))
	require.Empty(t, c.Drain("someone-else"))

	g, err := c.Inject(context.Background(), channels.Inbound{SenderID: "bob", GroupID: "team", Text: "yo"})
	require.NoError(t, err)
	require.Equal(t, []string{"echo: yo", "second"}, g)
	require.Equal(t, "team", seen[1].ChatID)
}

func TestInjectErrors(t *testing.T) {
	c := New()
	_, err := c.Inject(context.Background(), channels.Inbound{SenderID: "a", Text: "x"})
	require.ErrorIs(t, err, errs.ErrUnavailable)
	c = startLocal(t, func(context.Context, channels.Inbound) {})
	_, err = c.Inject(context.Background(), channels.Inbound{Text: "x"})
	require.ErrorIs(t, err, errs.ErrInvalidArgument)
	require.ErrorContains(t, err, "from")
	require.ErrorIs(t, c.Send(context.Background(), "", "x"), errs.ErrInvalidArgument)
}
