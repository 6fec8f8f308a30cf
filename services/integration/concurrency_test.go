//go:build integration

package integration

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	"github.com/moltbot/moltbot-secure/services/testharness"
)

// Issue 15 item 6 and issue 14 item 8 on the real images: while one
// Telegram chat runs an 8 s sandbox command, another chat's ping is
// answered in under a second; `status` shows the telegram channel
// connected as soon as its first poll is accepted, and a failed poll with
// its error and next retry.
func TestConcurrentChatsAndChannelStateOnStack(t *testing.T) {
	cfg, err := json.Marshal(map[string]any{
		"version": 1,
		"channels": map[string]any{
			"telegram": map[string]any{"botToken": fakeBotToken, "baseUrl": testharness.FakeTelegramBaseURL,
				"dm": map[string]any{"policy": "allowlist", "allowFrom": []any{"5001", "5002"}}},
		},
		"agents": map[string]any{"defaults": map[string]any{"sandbox": map[string]any{"docker": map[string]any{"image": testImage}}}},
	})
	require.NoError(t, err)
	st, _ := sandboxStack(t, cfg, nil)
	fake, err := st.StartFakeTelegram(ctxFor(t, time.Minute), fakeBotToken)
	require.NoError(t, err)
	restarted := time.Now()
	require.NoError(t, st.Restart(ctxFor(t, time.Minute), testharness.Gateway))
	gw := st.AdminGateway(t)

	telegram := func(t *testing.T) *gatewayv1.ChannelStatus {
		t.Helper()
		r, err := gw.Status(ctxFor(t, 10*time.Second), &gatewayv1.StatusRequest{All: true})
		require.NoError(t, err)
		for _, c := range r.GetChannels() {
			if c.GetName() == "telegram" {
				return c
			}
		}
		t.Fatal("no telegram channel in status --all")
		return nil
	}

	t.Run("connected at the first accepted poll, not after a long poll", func(t *testing.T) {
		require.Eventually(t, func() bool { return telegram(t).GetConnected() }, 10*time.Second, 100*time.Millisecond)
		c := telegram(t)
		require.NotNil(t, c.GetLastOkAt())
		require.WithinDuration(t, time.Now(), c.GetLastOkAt().AsTime(), 40*time.Second)
		t.Logf("telegram connected %s after the gateway restart", time.Since(restarted).Round(100*time.Millisecond))
	})

	t.Run("8 s command in one chat, ping in another", func(t *testing.T) {
		ctx := ctxFor(t, 3*time.Minute)
		// Warm chat 5001's sandbox, so the 8 s are the command's own.
		require.NoError(t, fake.DM(ctx, 5001, "slow", "/exec true"))
		got, err := fake.WaitSent(ctx, "5001", 0, 1)
		require.NoError(t, err)
		seq := got[len(got)-1].Seq
		require.NoError(t, fake.DM(ctx, 5001, "slow", "/exec sleep 8; echo slept"))
		time.Sleep(500 * time.Millisecond) // the command is running
		t0 := time.Now()
		require.NoError(t, fake.DM(ctx, 5002, "quick", "ping"))
		pong, err := fake.WaitSent(ctx, "5002", 0, 1)
		require.NoError(t, err)
		took := time.Since(t0)
		require.Equal(t, "echo: ping", pong[0].Text)
		t.Logf("ping answered in %s while another chat ran an 8 s command (was 8.3 s)", took.Round(time.Millisecond))
		require.Less(t, took, time.Second)
		slept, err := fake.WaitSent(ctx, "5001", seq, 1)
		require.NoError(t, err)
		require.Contains(t, slept[0].Text, "slept")
		require.Greater(t, slept[0].Seq, pong[0].Seq, "the slow command answered after the ping")
	})

	t.Run("a failed poll shows the error and the next retry", func(t *testing.T) {
		ctx := ctxFor(t, time.Minute)
		// Four failures in a row: the backoff (1, 2, 4, 8 s) leaves time to look.
		for range 4 {
			require.NoError(t, fake.Fail(ctx, "getUpdates", 502, "Bad Gateway"))
		}
		// The gateway is in a long poll: an update ends it, the next poll fails.
		require.NoError(t, fake.DM(ctx, 5002, "quick", "wake"))
		var c *gatewayv1.ChannelStatus
		require.Eventually(t, func() bool { c = telegram(t); return !c.GetConnected() }, 20*time.Second, 20*time.Millisecond)
		require.Contains(t, c.GetError(), "getUpdates: 502 Bad Gateway")
		require.NotContains(t, c.GetError(), strings.SplitN(fakeBotToken, ":", 2)[1])
		require.NotNil(t, c.GetNextRetryAt())
		require.WithinDuration(t, time.Now(), c.GetNextRetryAt().AsTime(), 35*time.Second)
		// What the operator reads (the real CLI binary).
		var line string
		for i := 0; i < 5 && !strings.Contains(line, "DISCONNECTED"); i++ {
			out, err := st.RunCLI(ctx, nil, "status", "--all")
			require.NoError(t, err)
			for _, l := range strings.Split(out.Logs, "\n") {
				if strings.Contains(l, "telegram ") && strings.Contains(l, "groups") {
					line = l
				}
			}
		}
		t.Logf("status --all: %s", strings.TrimSpace(line))
		require.Contains(t, line, "DISCONNECTED: telegram getUpdates: 502 Bad Gateway; retrying in ")
		require.Contains(t, line, "last good poll ")
		// The retries end with a good poll.
		require.Eventually(t, func() bool { return telegram(t).GetConnected() }, 30*time.Second, 100*time.Millisecond)
	})

	// Last: it kills the gateway (the client connection above is gone after).
	t.Run("SIGKILL during processing: at least once, nothing answered twice", func(t *testing.T) {
		ctx := ctxFor(t, 3*time.Minute)
		before, err := fake.Sent(ctx, "5002", 0)
		require.NoError(t, err)
		require.NoError(t, fake.DM(ctx, 5002, "quick", "answered before the kill"))
		got, err := fake.WaitSent(ctx, "5002", last(before), 1)
		require.NoError(t, err)
		require.Equal(t, "echo: answered before the kill", got[0].Text)
		sent1, err := fake.Sent(ctx, "5001", 0)
		require.NoError(t, err)
		require.NoError(t, fake.DM(ctx, 5001, "slow", "/exec sleep 4; echo survived-the-kill"))
		time.Sleep(1500 * time.Millisecond) // stored, confirmed to Telegram, the command running
		require.NoError(t, st.Kill(ctx, testharness.Gateway))
		require.NoError(t, st.StartAgain(ctx, testharness.Gateway))
		got, err = fake.WaitSent(ctx, "5001", last(sent1), 1)
		require.NoError(t, err, "the update stored before the kill was not processed after the restart")
		require.Contains(t, got[0].Text, "survived-the-kill")
		logs, err := st.Logs(ctx, testharness.Gateway)
		require.NoError(t, err)
		require.Contains(t, logs, "1 stored update(s) from an earlier run handed on", "answered from the inbound queue, not a resend")
		// Give a wrongly replayed earlier update time to show up: none may.
		time.Sleep(3 * time.Second)
		all, err := fake.Sent(ctx, "5002", last(before))
		require.NoError(t, err)
		require.Len(t, all, 1, "an update answered before the kill was answered again: %v", all)
	})
}

func last(s []testharness.TelegramSent) int {
	if len(s) == 0 {
		return 0
	}
	return s[len(s)-1].Seq
}
