//go:build integration

package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	"github.com/moltbot/moltbot-secure/services/testharness"
)

// Issue 13 item 2 on the real images: `gateway restart` (Reload) builds a
// new runtime from the config, swaps it in and stops the old one, without
// restarting the gateway's process (its container keeps its start time).
// A provision that fails (a bot token the fake Bot API rejects, an
// unreachable baseUrl) keeps the old runtime.

func channelNames(t *testing.T, gw gatewayv1.GatewayClient) []string {
	t.Helper()
	r, err := gw.Status(ctxFor(t, 30*time.Second), &gatewayv1.StatusRequest{All: true})
	require.NoError(t, err)
	var out []string
	for _, c := range r.GetChannels() {
		out = append(out, c.GetName())
	}
	return out
}

func setConfig(t *testing.T, gw gatewayv1.GatewayClient, path, value string, isString bool) {
	t.Helper()
	_, err := gw.SetConfig(ctxFor(t, 30*time.Second), &gatewayv1.SetConfigRequest{Path: path, Value: value, ValueIsString: isString})
	require.NoError(t, err, "config set %s", path)
}

func reloadNow(t *testing.T, gw gatewayv1.GatewayClient) *gatewayv1.ReloadResponse {
	t.Helper()
	r, err := gw.Reload(ctxFor(t, time.Minute), &gatewayv1.ReloadRequest{})
	require.NoError(t, err)
	return r
}

func problemsText(r *gatewayv1.ReloadResponse) string {
	var b strings.Builder
	for _, p := range r.GetProblems() {
		b.WriteString(p.GetPath() + " " + p.GetMessage() + " " + p.GetFix() + "\n")
	}
	return b.String()
}

func TestReloadAppliesChannels(t *testing.T) {
	st := testharness.Start(t, testharness.Options{GatewayConfig: []byte(`{"version": 1, "channels": {"local": {"dm": {"policy": "pairing"}}}}`)})
	ctx := ctxFor(t, 3*time.Minute)
	fake, err := st.StartFakeTelegram(ctx, fakeBotToken)
	require.NoError(t, err)
	gw := st.AdminGateway(t)
	started := func() int64 {
		r, err := gw.Status(ctx, &gatewayv1.StatusRequest{})
		require.NoError(t, err)
		for _, s := range r.GetServices() {
			if s.GetName() == testharness.Gateway {
				return s.GetStartedAt().AsTime().UnixNano()
			}
		}
		t.Fatal("no gateway in status")
		return 0
	}
	start := started()
	require.Equal(t, []string{"local"}, channelNames(t, gw))

	t.Run("failed provision keeps the old runtime", func(t *testing.T) {
		for _, tc := range []struct{ name, token, baseURL, sender string }{
			{"bot token the Bot API rejects", "999999:WRONG-token-the-fake-rejects", testharness.FakeTelegramBaseURL, "zoe"},
			{"unreachable baseUrl", fakeBotToken, "http://127.0.0.1:9", "yann"},
		} {
			setConfig(t, gw, "channels.telegram.botToken", tc.token, true)
			setConfig(t, gw, "channels.telegram.baseUrl", tc.baseURL, true)
			r := reloadNow(t, gw)
			require.False(t, r.GetApplied(), "%s: %v", tc.name, r.GetChanges())
			text := problemsText(r)
			require.Contains(t, text, "channels.telegram", tc.name)
			require.Contains(t, text, "keeps serving", tc.name)
			require.NotContains(t, text, "WRONG-token", "the token is never in the reply")
			require.NotContains(t, text, "rpc error")
			require.Equal(t, []string{"local"}, channelNames(t, gw), "%s: the old runtime stays", tc.name)
			// The old runtime still answers on the local channel (a pairing code).
			reply, _ := sendAll(t, gw, tc.sender, "hello")
			require.NotEmpty(t, reply)
		}
	})

	t.Run("a new telegram channel starts on reload", func(t *testing.T) {
		setConfig(t, gw, "channels.telegram.botToken", fakeBotToken, true)
		setConfig(t, gw, "channels.telegram.baseUrl", testharness.FakeTelegramBaseURL, true)
		r := reloadNow(t, gw)
		require.True(t, r.GetApplied(), problemsText(r))
		require.Contains(t, strings.Join(r.GetChanges(), "\n"), "channels.telegram: added")
		require.Equal(t, []string{"local", "telegram"}, channelNames(t, gw))
		// The default dm policy (pairing): a stranger gets a code.
		require.NoError(t, fake.DM(ctx, 2001, "carol", "hello"))
		got, err := fake.WaitSent(ctx, "2001", 0, 1)
		require.NoError(t, err)
		codeIn(t, got[0].Text)
	})

	t.Run("a dm policy change takes effect on the next message", func(t *testing.T) {
		before, err := fake.Sent(ctx, "2001", 0)
		require.NoError(t, err)
		seq := before[len(before)-1].Seq
		setConfig(t, gw, "channels.telegram.dm.allowFrom", `["2001"]`, false)
		setConfig(t, gw, "channels.telegram.dm.policy", "allowlist", true)
		r := reloadNow(t, gw)
		require.True(t, r.GetApplied(), problemsText(r))
		require.Contains(t, strings.Join(r.GetChanges(), "\n"), "channels.telegram policies: dm allowlist (1 allowed)")
		require.NoError(t, fake.DM(ctx, 2001, "carol", "ping after reload"))
		got, err := fake.WaitSent(ctx, "2001", seq, 1)
		require.NoError(t, err)
		require.Equal(t, "echo: ping after reload", got[0].Text)
	})

	require.Equal(t, start, started(), "the gateway process was not restarted")
}
