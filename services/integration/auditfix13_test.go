//go:build integration

package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	pairingv1 "github.com/moltbot/moltbot-secure/proto/pairing/v1"
	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/seclog"
	"github.com/moltbot/moltbot-secure/services/testharness"
)

// Issue 13 items 8 and 9 on a local stack (real daemons, real mTLS gRPC).

// localCLI runs the real moltbot binary against l's gateway as the owner
// (the CLI bundle copied as `certs init --export` leaves it).
func localCLI(t testing.TB, l *testharness.LocalStack) func(args ...string) cliResult {
	t.Helper()
	bundle := t.TempDir()
	for _, n := range []string{"ca.pem", "cli.pem", "cli-key.pem", "cli.token"} {
		b, err := os.ReadFile(filepath.Join(l.PKIDir(), n))
		require.NoError(t, err)
		require.NoError(t, os.MkdirAll(filepath.Join(bundle, "pki"), 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(bundle, "pki", n), b, 0o600))
	}
	bin := moltbotBinary(t)
	return func(args ...string) cliResult {
		t.Helper()
		return runMoltbot(ctxFor(t, time.Minute), t, bin, []string{"HOME=" + bundle, "MOLTBOT_STATE_DIR=" + bundle,
			"MOLTBOT_GATEWAY=" + l.Addr(testharness.Gateway), "CLAWDBOT_GATEWAY_TOKEN="}, args...)
	}
}

// Under dm.policy allowlist a sender approved by pairing is not let through:
// `pairing list --allowed` says so and names the fix, and their DM gets the
// decision any unlisted sender gets, recorded in the security log.
func TestAuditFix13AllowlistIgnoresPairingApprovals(t *testing.T) {
	l := testharness.StartLocal(t, testharness.LocalOptions{
		GatewayConfig: []byte(`{"version":1,"channels":{"local":{"dm":{"policy":"pairing"}}}}`),
	})
	ctx := ctxFor(t, 2*time.Minute)
	gw := l.AdminGateway(t)
	pc := pairingv1.NewPairingClient(l.AdminConn(t))
	cli := localCLI(t, l)

	r, err := gw.Send(ctx, &gatewayv1.SendRequest{Channel: "local", From: "alice", Text: "hi"})
	require.NoError(t, err)
	require.NotEmpty(t, r.GetReplies())
	_, err = pc.Approve(noNotify(ctx), &pairingv1.ApproveRequest{Channel: "local", Code: codeIn(t, r.GetReplies()[0])})
	require.NoError(t, err)

	letThrough := func(sender string) *pairingv1.AllowedSender {
		t.Helper()
		al, err := pc.ListAllowed(ctx, &pairingv1.ListAllowedRequest{Channel: "local"})
		require.NoError(t, err)
		for _, s := range al.GetSenders() {
			if s.GetSenderId() == sender {
				return s
			}
		}
		t.Fatalf("%s not in the approved senders: %v", sender, al.GetSenders())
		return nil
	}
	a := letThrough("alice")
	require.NotNil(t, a.LetThrough, "the gateway says what the policy does")
	require.True(t, a.GetLetThrough(), "pairing policy: an approval lets the sender through")

	// Switch to allowlist (someone else listed) and restart, so the test
	// holds whatever reload applies.
	_, err = gw.SetConfig(ctx, &gatewayv1.SetConfigRequest{Path: "channels.local.dm.policy", Value: "allowlist", ValueIsString: true})
	require.NoError(t, err)
	_, err = gw.SetConfig(ctx, &gatewayv1.SetConfigRequest{Path: "channels.local.dm.allowFrom", Value: `["bob"]`})
	require.NoError(t, err)
	require.NoError(t, l.Restart(ctx, testharness.Gateway))
	gw = l.AdminGateway(t)
	pc = pairingv1.NewPairingClient(l.AdminConn(t))

	a = letThrough("alice")
	require.NotNil(t, a.LetThrough)
	require.False(t, a.GetLetThrough(), "allowlist: an approval alone does not count")
	require.Equal(t, "dm.policy allowlist: add to channels.local.dm.allowFrom", a.GetBlockedBecause())

	out := cli("pairing", "list", "--allowed")
	require.Equal(t, 0, out.code, out.out)
	require.Contains(t, out.out, "LET THROUGH")
	require.Contains(t, out.out, "no (dm.policy allowlist: add to channels.local.dm.allowFrom)")

	approved, err := gw.Send(ctx, &gatewayv1.SendRequest{Channel: "local", From: "alice", Text: "still me"})
	require.NoError(t, err)
	stranger, err := gw.Send(ctx, &gatewayv1.SendRequest{Channel: "local", From: "zed", Text: "hi"})
	require.NoError(t, err)
	require.False(t, approved.GetReachedAgent())
	require.Equal(t, stranger.GetDecision(), approved.GetDecision(), "the same decision as any unlisted sender")
	require.Equal(t, stranger.GetReplies(), approved.GetReplies())
	require.Contains(t, approved.GetDecision(), "dm.allowFrom")

	// Not a silent drop: the block is on record (written asynchronously).
	logPath := filepath.Join(l.StateDir(testharness.Gateway), "logs", seclog.LogFile)
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(logPath)
		for _, ln := range strings.Split(string(b), "\n") {
			if strings.Contains(ln, `"message.blocked"`) && strings.Contains(ln, "local:alice") && strings.Contains(ln, "dm.allowFrom") {
				return true
			}
		}
		return false
	}, 20*time.Second, 200*time.Millisecond, "no message.blocked line for local:alice in %s", logPath)

	// Listing the sender in dm.allowFrom lets them through again.
	_, err = gw.SetConfig(ctx, &gatewayv1.SetConfigRequest{Path: "channels.local.dm.allowFrom", Value: `["bob","alice"]`})
	require.NoError(t, err)
	require.NoError(t, l.Restart(ctx, testharness.Gateway))
	pc = pairingv1.NewPairingClient(l.AdminConn(t))
	require.True(t, letThrough("alice").GetLetThrough())
}

// audit --fix through the gateway writes valid values: the group-policy fix
// sets the string allowlist (once a JSON-quoted "\"allowlist\"" that failed
// its own validation), the config still validates, and no fix failed.
func TestAuditFix13WritesValidValues(t *testing.T) {
	l := testharness.StartLocal(t, testharness.LocalOptions{
		GatewayConfig: []byte(`{"version":1,"channels":{"local":{"groups":{"policy":"open"}}},
			"gateway":{"controlUi":{"allowInsecureAuth":false}}}`),
	})
	ctx := ctxFor(t, 2*time.Minute)
	gw := l.AdminGateway(t)
	resp, err := gw.AuditFix(ctx, &gatewayv1.AuditFixRequest{})
	require.NoError(t, err)
	fixes := resp.GetReport().GetFixes()
	require.NotEmpty(t, fixes)
	for _, f := range fixes {
		require.False(t, strings.HasPrefix(f, "failed"), "a fix failed: %v", fixes)
	}
	require.Contains(t, strings.Join(fixes, "\n"), "channels.local.groups.policy")

	b, err := os.ReadFile(l.ConfigPath())
	require.NoError(t, err)
	var tree map[string]any
	require.NoError(t, json.Unmarshal(b, &tree))
	got, ok := config.GetIn(tree, []string{"channels", "local", "groups", "policy"})
	require.True(t, ok)
	require.Equal(t, "allowlist", got)
	_, ok = config.GetIn(tree, []string{"gateway", "controlUi", "allowInsecureAuth"})
	require.False(t, ok, "the deprecated flag was removed")
	c, err := config.Parse(l.ConfigPath(), b)
	require.NoError(t, err)
	require.Empty(t, config.Errors(c.Validate()))

	v, err := gw.ValidateConfig(ctx, &gatewayv1.ValidateConfigRequest{})
	require.NoError(t, err)
	for _, p := range v.GetProblems() {
		require.NotEqual(t, "error", p.GetSeverity(), "%s: %s", p.GetPath(), p.GetMessage())
	}
	for _, f := range resp.GetReport().GetFindings() {
		require.NotEqual(t, "channels.local.groups.open", f.GetId())
		require.NotEqual(t, "gateway.control_ui.insecure_auth", f.GetId())
	}
}
