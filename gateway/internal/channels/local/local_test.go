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
	c = startLocal(t, func(ctx context.Context, in channels.Inbound, ack channels.Ack) {
		defer ack(true)
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
	c = startLocal(t, func(_ context.Context, _ channels.Inbound, ack channels.Ack) { ack(true) })
	_, err = c.Inject(context.Background(), channels.Inbound{Text: "x"})
	require.ErrorIs(t, err, errs.ErrInvalidArgument)
	require.ErrorContains(t, err, "from")
	require.ErrorIs(t, c.Send(context.Background(), "", "x"), errs.ErrInvalidArgument)

	// A message the pipeline could not process (it is stopping) is an error, not an empty answer.
	c = startLocal(t, func(_ context.Context, _ channels.Inbound, ack channels.Ack) { go ack(false) })
	_, err = c.Inject(context.Background(), channels.Inbound{SenderID: "a", Text: "x"})
	require.ErrorIs(t, err, errs.ErrUnavailable)
	require.ErrorContains(t, err, "send it again")
}

// Ids key allowlists and sessions, so an unsafe one is refused whole; a
// display name is only shown, so it is neutralised and the message arrives.
func TestInjectSanitises(t *testing.T) {
	var seen []channels.Inbound
	c := startLocal(t, func(_ context.Context, in channels.Inbound, ack channels.Ack) { seen = append(seen, in); ack(true) })
	tests := []struct {
		name string
		in   channels.Inbound
		want string // error substring; "" = delivered
	}{
		{"bidi override in sender", channels.Inbound{SenderID: "alice\u202Eecila", Text: "x"}, "from (sender id): control or format character U+202E"},
		{"isolate in sender", channels.Inbound{SenderID: "\u2067bob", Text: "x"}, "from (sender id): control or format character U+2067"},
		{"newline in sender", channels.Inbound{SenderID: "a\nb", Text: "x"}, "from (sender id): control or format character U+000A"},
		{"bidi in group", channels.Inbound{SenderID: "a", GroupID: "t\u202Ae", Text: "x"}, "group id: control"},
		{"bidi in chat", channels.Inbound{SenderID: "a", ChatID: "c\u2069", Text: "x"}, "chat id: control"},
		{"bidi in name is neutralised", channels.Inbound{SenderID: "carol", Text: "x", Meta: map[string]string{"name": "\u202Eevil\x1b[2J"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := len(seen)
			_, err := c.Inject(context.Background(), tt.in)
			if tt.want != "" {
				require.ErrorIs(t, err, errs.ErrInvalidArgument)
				require.ErrorContains(t, err, tt.want)
				require.Len(t, seen, n, "not delivered")
				return
			}
			require.NoError(t, err)
			require.Len(t, seen, n+1)
			require.Equal(t, "\uFFFDevil\uFFFD[2J", seen[n].Meta["name"])
		})
	}
}
