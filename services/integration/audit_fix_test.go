//go:build integration

package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	secretsv1 "github.com/moltbot/moltbot-secure/proto/secrets/v1"
	"github.com/moltbot/moltbot-secure/services/client"
	"github.com/moltbot/moltbot-secure/services/envelope"
	"github.com/moltbot/moltbot-secure/services/testharness"
)

// seedBefore is the seed's "before" world in one file: a short token,
// dm.policy open with allowFrom *, the deprecated controlUi flags, group
// policy open, sandbox off and plain secrets, in upstream JSON5.
const seedBefore = `{
  // upstream moltbot config, before phase 1
  gateway: {
    auth: { mode: "token", token: "short-token-abc123" },
    controlUi: { allowInsecureAuth: true, dangerouslyDisableDeviceAuth: true },
  },
  channels: {
    telegram: {
      botToken: "123456789:AAH-plain-telegram-bot-token-xyz",
      baseUrl: "http://127.0.0.1:1",
      dm: { policy: "open", allowFrom: ["*"] },
      groups: { policy: "open" },
    },
  },
  models: { providers: { openai: { apiKey: "sk-plain-openai-key-0123456789" } } },
  agents: { defaults: { sandbox: { mode: "off" } } },
}
`

type auditJSON struct {
	Score    int `json:"score"`
	Findings []struct {
		ID       string `json:"id"`
		Severity string `json:"severity"`
	} `json:"findings"`
}

// The seed's flow with the gateway refusing to start on the old config:
// audit (score < 50) -> security migrate -> audit --fix (both offline,
// through secretsd) -> the gateway starts -> score >= 85 with no critical,
// and a second --fix through the gateway changes nothing.
func TestAuditFixSeedBeforeConfig(t *testing.T) {
	l := testharness.StartLocal(t, testharness.LocalOptions{Services: []string{testharness.Secretsd, testharness.Pairingd, testharness.Gateway}})
	require.NoError(t, l.Stop(testharness.Gateway, 5*time.Second))
	state := l.StateDir(testharness.Gateway)
	require.NoError(t, os.WriteFile(l.ConfigPath(), []byte(seedBefore), 0o644))
	require.NoError(t, os.Chmod(l.ConfigPath(), 0o644))
	require.NoError(t, os.Chmod(state, 0o755))
	// The CLI's admin bundle, as `certs init --export` leaves it.
	pki := filepath.Join(state, "pki")
	require.NoError(t, os.MkdirAll(pki, 0o700))
	for _, n := range []string{"ca.pem", "cli.pem", "cli-key.pem", "cli.token"} {
		b, err := os.ReadFile(filepath.Join(l.PKIDir(), n))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(pki, n), b, 0o600))
	}
	bin := filepath.Join(repoRoot(t), "bin", "moltbot")
	cli := func(args ...string) (string, int) {
		cmd := exec.Command(bin, args...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + state, "MOLTBOT_STATE_DIR=" + state,
			"MOLTBOT_SECRETSD_ADDR=" + l.Addr(testharness.Secretsd), "MOLTBOT_GATEWAY=" + l.Addr(testharness.Gateway)}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else {
			require.NoError(t, err)
		}
		require.NoError(t, testharness.CheckCLIOutput(out.String()))
		return out.String(), code
	}
	score := func(out string) auditJSON {
		var a auditJSON
		i := strings.Index(out, "{")
		require.GreaterOrEqual(t, i, 0, out)
		require.NoError(t, json.Unmarshal([]byte(out[i:]), &a), out)
		return a
	}

	out, _ := cli("security", "audit", "--json")
	before := score(out)
	require.Less(t, before.Score, 50, out)
	t.Logf("seed before: score %d, %d findings", before.Score, len(before.Findings))

	out, code := cli("security", "migrate")
	require.Equal(t, 0, code, out)
	out, code = cli("security", "audit", "--fix")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "generated a new gateway token", out)
	for _, secret := range []string{"short-token-abc123", "AAH-plain-telegram-bot-token-xyz", "sk-plain-openai-key-0123456789"} {
		require.NotContains(t, readAll(t, state), secret, "no plaintext secret anywhere in the state dir")
	}

	// The gateway starts on the migrated, fixed config with its new token.
	ctx := ctxFor(t, time.Minute)
	require.NoError(t, l.StartAgain(ctx, testharness.Gateway))
	tok := fixedToken(t, ctx, l)
	gw := gatewayClient(t, l, tok)
	resp, err := gw.Audit(ctx, &gatewayv1.AuditRequest{})
	require.NoError(t, err)
	for _, f := range resp.GetFindings() {
		require.NotEqual(t, "critical", f.GetSeverity(), "%s: %s", f.GetId(), f.GetDetail())
	}
	require.GreaterOrEqual(t, resp.GetScore(), int32(85), "%v", resp.GetFindings())
	t.Logf("after migrate + fix: score %d (%s)", resp.GetScore(), resp.GetBand())

	cfgBefore, err := os.ReadFile(l.ConfigPath())
	require.NoError(t, err)
	again, err := l.AdminGateway(t).AuditFix(ctx, &gatewayv1.AuditFixRequest{})
	require.NoError(t, err)
	require.Empty(t, again.GetReport().GetFixes(), "a second --fix changes nothing")
	cfgAfter, err := os.ReadFile(l.ConfigPath())
	require.NoError(t, err)
	require.Equal(t, cfgBefore, cfgAfter)
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir
		}
		up := filepath.Dir(dir)
		require.NotEqual(t, up, dir, "no go.work above the test")
		dir = up
	}
}

func readAll(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	require.NoError(t, filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || fi.Size() > 4<<20 {
			return err
		}
		c, err := os.ReadFile(p)
		if err == nil {
			b.Write(c)
		}
		return nil
	}))
	return b.String()
}

// fixedToken decrypts the token audit --fix generated, as the admin would
// with `config get gateway.auth.token --reveal`.
func fixedToken(t *testing.T, ctx context.Context, l *testharness.LocalStack) string {
	t.Helper()
	var cfg struct {
		Gateway struct {
			Auth struct {
				Token map[string]any `json:"token"`
			} `json:"auth"`
		} `json:"gateway"`
	}
	b, err := os.ReadFile(l.ConfigPath())
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &cfg))
	require.True(t, envelope.IsEnvelope(cfg.Gateway.Auth.Token), "the token is stored encrypted")
	text, err := json.Marshal(cfg.Gateway.Auth.Token)
	require.NoError(t, err)
	tlsCfg, err := l.ClientTLS(testharness.CLI, testharness.Secretsd)
	require.NoError(t, err)
	tok, err := l.Token(testharness.CLI)
	require.NoError(t, err)
	cc, err := l.Dial(testharness.Secretsd, tlsCfg, tok)
	require.NoError(t, err)
	defer cc.Close()
	r, err := secretsv1.NewSecretsClient(cc).Decrypt(ctx, &secretsv1.DecryptRequest{Envelope: string(text), Aad: "gateway.auth.token"})
	require.NoError(t, err)
	return string(r.GetPlaintext())
}

func gatewayClient(t *testing.T, l *testharness.LocalStack, token string) gatewayv1.GatewayClient {
	t.Helper()
	cfg, err := l.ClientTLS(testharness.CLI, testharness.Gateway)
	require.NoError(t, err)
	cc, err := client.Dial(l.Addr(testharness.Gateway), cfg, token)
	require.NoError(t, err)
	t.Cleanup(func() { cc.Close() })
	return gatewayv1.NewGatewayClient(cc)
}
