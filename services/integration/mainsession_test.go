//go:build integration

package integration

import (
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	pairingv1 "github.com/moltbot/moltbot-secure/proto/pairing/v1"
	"github.com/moltbot/moltbot-secure/services/testharness"
)

// Issue 12 items 2 and 3 on the real images: an approved non-owner DM
// sender gets their own hardened session; `pairing approve --owner` makes a
// sender the owner (written to channels.local.owner, applied by reload),
// whose DMs are the main session, run in a main-profile sandbox. Neither
// /exec reads the gateway's token, key or state: the gateway runs no command.

// probeCmd tries to read what only the gateway holds.
const probeCmd = "cat /pki/gateway.token /pki/gateway-key.pem /pki/gateway-auth.token; ls /pki /state /keys; cat /state/moltbot.json; id -u; env"

func mainSessionConfig(t *testing.T) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"version": 1,
		"channels": map[string]any{
			"local":    map[string]any{"dm": map[string]any{"policy": "pairing"}},
			"telegram": map[string]any{"botToken": fakeBotToken, "baseUrl": testharness.FakeTelegramBaseURL},
		},
		"agents": map[string]any{"defaults": map[string]any{"sandbox": map[string]any{"docker": map[string]any{"image": testImage}}}},
	})
	require.NoError(t, err)
	return b
}

// sendAll sends a local DM and returns every reply (an approval notice may
// come first).
func sendAll(t *testing.T, gw gatewayv1.GatewayClient, from, text string) (string, *gatewayv1.SendResponse) {
	t.Helper()
	resp, err := gw.Send(ctxFor(t, 90*time.Second), &gatewayv1.SendRequest{Channel: "local", From: from, Text: text})
	require.NoError(t, err)
	return strings.Join(resp.GetReplies(), "\n"), resp
}

// execOutput is a /exec reply without its first line, which echoes the
// command (and so names the paths it tried).
func execOutput(t *testing.T, reply string) string {
	t.Helper()
	i := strings.Index(reply, "$ ")
	require.GreaterOrEqual(t, i, 0, "not an /exec reply: %q", reply)
	rest := reply[i:]
	nl := strings.IndexByte(rest, '\n')
	require.Greater(t, nl, 0, "no output in %q", reply)
	return rest[nl+1:]
}

// pairCode DMs as from and returns the pairing code the bot replied with.
func pairCode(t *testing.T, gw gatewayv1.GatewayClient, from string) string {
	t.Helper()
	reply, resp := sendAll(t, gw, from, "hello")
	require.False(t, resp.GetReachedAgent(), resp.GetDecision())
	return codeIn(t, reply)
}

func TestMainSessionOwnerOnly(t *testing.T) {
	st, _ := sandboxStack(t, mainSessionConfig(t), nil)
	fake, err := st.StartFakeTelegram(ctxFor(t, time.Minute), fakeBotToken)
	require.NoError(t, err)
	// The poller backed off while the fake was not there; restart to poll now.
	require.NoError(t, st.Restart(ctxFor(t, time.Minute), testharness.Gateway))
	gw := st.AdminGateway(t)
	pc := pairingv1.NewPairingClient(st.AdminConn(t))

	// What must never show up in a sandbox's output.
	svcTok, err := st.Token(testharness.Gateway)
	require.NoError(t, err)
	clientTok, err := st.GatewayToken()
	require.NoError(t, err)
	keyPEM, err := os.ReadFile(filepath.Join(st.PKIDir(), "gateway-key.pem"))
	require.NoError(t, err)
	blk, _ := pem.Decode(keyPEM)
	require.NotNil(t, blk)
	keyLines := strings.Split(strings.TrimSpace(string(keyPEM)), "\n")
	require.Greater(t, len(keyLines), 2)
	secrets := map[string]string{"gateway service token": svcTok, "gateway client token": clientTok, "gateway key": keyLines[1]}
	listings := []string{"ca.pem", "-key.pem", ".token", "moltbot.json", "sessions", "secrets.key"}
	assertClean := func(t *testing.T, out string) {
		t.Helper()
		for what, s := range secrets {
			require.NotContains(t, out, s, "the %s leaked into a sandbox", what)
		}
		// The shell's "No such file" lines name the paths it tried; every
		// other line must list nothing of the gateway's.
		require.Contains(t, out, "ls: /pki: No such file or directory")
		require.Contains(t, out, "ls: /state: No such file or directory")
		var rest []string
		for _, line := range strings.Split(out, "\n") {
			if !strings.HasSuffix(line, "No such file or directory") {
				rest = append(rest, line)
			}
		}
		for _, l := range listings {
			require.NotContains(t, strings.Join(rest, "\n"), l, "a pki/state listing leaked into a sandbox")
		}
		require.Contains(t, "\n"+out, "\n10001\n", "ran as the sandbox user: %q", out)
		require.NotContains(t, out, "65101", "never the gateway's uid")
	}

	t.Run("approved sender: own hardened session", func(t *testing.T) {
		ctx := ctxFor(t, time.Minute)
		_, err := pc.Approve(ctx, &pairingv1.ApproveRequest{Channel: "local", Code: pairCode(t, gw, "mallory")})
		require.NoError(t, err)
		reply, resp := sendAll(t, gw, "mallory", "/exec "+probeCmd)
		require.True(t, resp.GetReachedAgent(), resp.GetDecision())
		require.Equal(t, "agent:main:local:dm:mallory", resp.GetSessionKey(), "never the main session")
		require.Contains(t, reply, ", profile hardened]")
		assertClean(t, execOutput(t, reply))
	})

	t.Run("approve --owner: the owner's main session", func(t *testing.T) {
		ctx := ctxFor(t, time.Minute)
		a, err := pc.Approve(ctx, &pairingv1.ApproveRequest{Channel: "local", Code: pairCode(t, gw, "boss"), Owner: true})
		require.NoError(t, err)
		require.Equal(t, "boss", a.GetSenderId())
		cfg, err := os.ReadFile(filepath.Join(st.StateDir(testharness.Gateway), "moltbot.json"))
		require.NoError(t, err)
		var tree struct {
			Channels map[string]struct {
				Owner []string `json:"owner"`
			} `json:"channels"`
		}
		require.NoError(t, json.Unmarshal(cfg, &tree), "%s", cfg)
		require.Equal(t, []string{"boss"}, tree.Channels["local"].Owner, "written to channels.local.owner")

		reply, resp := sendAll(t, gw, "boss", "/exec "+probeCmd)
		require.True(t, resp.GetReachedAgent(), resp.GetDecision())
		require.Equal(t, "agent:main:main", resp.GetSessionKey())
		require.Contains(t, reply, ", profile main]", "the gateway ran nothing itself")
		assertClean(t, execOutput(t, reply))
	})

	// tgExec DMs the bot on the fake Telegram as user id and returns the
	// /exec reply the bot sent back.
	tgExec := func(t *testing.T, id int64, name string, after int) string {
		t.Helper()
		ctx := ctxFor(t, 90*time.Second)
		chat := strconv.FormatInt(id, 10)
		require.NoError(t, fake.DM(ctx, id, name, "/exec "+probeCmd))
		for {
			got, err := fake.WaitSent(ctx, chat, after, 1)
			require.NoError(t, err)
			for _, m := range got {
				if strings.HasPrefix(m.Text, "$ ") {
					return m.Text
				}
				after = m.Seq
			}
		}
	}
	// tgApprove gets id a pairing code over Telegram and approves it.
	tgApprove := func(t *testing.T, id int64, name string, owner bool) int {
		t.Helper()
		ctx := ctxFor(t, time.Minute)
		chat := strconv.FormatInt(id, 10)
		require.NoError(t, fake.DM(ctx, id, name, "hello"))
		got, err := fake.WaitSent(ctx, chat, 0, 1)
		require.NoError(t, err)
		_, err = pc.Approve(ctx, &pairingv1.ApproveRequest{Channel: "telegram", Code: codeIn(t, got[0].Text), Owner: owner})
		require.NoError(t, err)
		got, err = fake.WaitSent(ctx, chat, got[0].Seq, 1) // the approval notice
		require.NoError(t, err)
		return got[len(got)-1].Seq
	}

	t.Run("telegram: approved sender is hardened", func(t *testing.T) {
		seq := tgApprove(t, 3001, "eve", false)
		reply := tgExec(t, 3001, "eve", seq)
		require.Contains(t, reply, ", profile hardened]")
		assertClean(t, execOutput(t, reply))
	})

	t.Run("telegram: approve --owner gives the main profile", func(t *testing.T) {
		seq := tgApprove(t, 4001, "me", true)
		reply := tgExec(t, 4001, "me", seq)
		require.Contains(t, reply, ", profile main]")
		assertClean(t, execOutput(t, reply))
	})

	t.Run("only the owner's session has the owner's workspace", func(t *testing.T) {
		reply, _ := sendAll(t, gw, "boss", "/exec echo plan-7f3 > /workspace/plan && cat /workspace/plan")
		require.Contains(t, execOutput(t, reply), "plan-7f3\n")
		reply, _ = sendAll(t, gw, "mallory", "/exec cat /workspace/plan; ls /workspace")
		require.NotContains(t, execOutput(t, reply), "plan-7f3")
		require.NotContains(t, execOutput(t, reply), "plan\n")
	})
}
