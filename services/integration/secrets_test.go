//go:build integration

package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	secretsv1 "github.com/moltbot/moltbot-secure/proto/secrets/v1"
	"github.com/moltbot/moltbot-secure/services/testharness"
)

// secretsEnv is a stack of secretsd, pairingd and gateway containers (no
// sandboxd: nothing here needs Docker inside) plus the host CLI.
type secretsEnv struct {
	t      *testing.T
	st     *testharness.Stack
	bin    string
	bundle string
	addr   string
	token  string // gateway token the CLI presents; "" = the bundle's
}

func startSecrets(t *testing.T) *secretsEnv {
	t.Helper()
	st := testharness.Start(t, testharness.Options{Services: []string{testharness.Secretsd, testharness.Pairingd, testharness.Gateway}})
	bundle, err := st.ExportClientBundle(t.TempDir())
	require.NoError(t, err)
	e := &secretsEnv{t: t, st: st, bin: moltbotBinary(t), bundle: bundle}
	e.refreshAddr()
	return e
}

func (e *secretsEnv) refreshAddr() {
	addr, err := e.st.Addr(ctxFor(e.t, 30*time.Second), testharness.Gateway)
	require.NoError(e.t, err)
	e.addr = addr
}

// cli runs the host moltbot against the stack's gateway.
func (e *secretsEnv) cli(stdin string, args ...string) cliResult {
	e.t.Helper()
	env := []string{"MOLTBOT_STATE_DIR=" + e.bundle, "MOLTBOT_GATEWAY=" + e.addr, "CLAWDBOT_GATEWAY_TOKEN=" + e.token}
	return runMoltbotStdin(ctxFor(e.t, time.Minute), e.t, e.bin, env, stdin, args...)
}

func runMoltbotStdin(ctx context.Context, t *testing.T, bin string, env []string, stdin string, args ...string) cliResult {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run moltbot: %v", err)
	}
	if err := testharness.CheckCLIOutput(out.String()); err != nil {
		t.Errorf("moltbot %v: %v", args, err)
	}
	return cliResult{code: cmd.ProcessState.ExitCode(), out: out.String()}
}

func (e *secretsEnv) cfgPath() string {
	return filepath.Join(e.st.StateDir(testharness.Gateway), "moltbot.json")
}

func (e *secretsEnv) cfgHash() string {
	b, err := os.ReadFile(e.cfgPath())
	if os.IsNotExist(err) {
		return "absent"
	}
	require.NoError(e.t, err)
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func (e *secretsEnv) restartGateway() {
	e.t.Helper()
	require.NoError(e.t, e.st.Restart(ctxFor(e.t, time.Minute), testharness.Gateway))
	e.refreshAddr()
}

func (e *secretsEnv) secretsAsCLI() secretsv1.SecretsClient {
	return secretsv1.NewSecretsClient(e.st.ServiceConn(e.t, testharness.Secretsd, "cli"))
}

// grepState fails when any file under dir holds any of the values.
func grepState(t *testing.T, dir string, values ...string) {
	t.Helper()
	n := 0
	require.NoError(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		n++
		for _, v := range values {
			require.NotContains(t, string(b), v, "plaintext secret found in %s", p)
		}
		return nil
	}))
	require.Positive(t, n)
}

// onceFile writes a 0600 file owned by svc's uid for a bind mount into a
// RunOnce container (RunOnce gives the container a fresh state dir and does
// not write ServiceOptions.StateFiles into it).
func onceFile(t *testing.T, svc string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(p, b, 0o600))
	uid := testharness.UIDs()[svc]
	require.NoError(t, os.Chown(p, uid, uid))
	return p
}

var kidRE = regexp.MustCompile(`"kid":\s*"(k[0-9]+)"`)

func kidsIn(t *testing.T, paths ...string) []string {
	t.Helper()
	var out []string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		for _, m := range kidRE.FindAllStringSubmatch(string(b), -1) {
			out = append(out, m[1])
		}
	}
	return out
}

// TestSecretsSetGetRestartRotate covers: set a secret with the CLI -> the
// file holds an envelope and no plaintext -> get --reveal returns it ->
// gateway restart works; rotate (old envelopes decrypt), rewrap (all carry
// the new kid), retire the old keys (nothing breaks).
func TestSecretsSetGetRestartRotate(t *testing.T) {
	e := startSecrets(t)
	const bot = "4242:AAsecretBOTtokenAAsecretBOTtoken_x"
	const api = "sk-proj-INTEGRATIONsecretAPIkey0123456789"

	r := e.cli(bot+"\n", "config", "set", "channels.telegram.botToken", "-")
	require.Equal(t, 0, r.code, r.out)
	require.Contains(t, r.out, "encrypted through secretsd")
	require.NotContains(t, r.out, bot, "set never echoes the value")
	r = e.cli("", "config", "set", "channels.telegram.enabled", "false")
	require.Equal(t, 0, r.code, r.out)
	r = e.cli(api, "config", "set", "models.providers.openai.apiKey", "-")
	require.Equal(t, 0, r.code, r.out)
	r = e.cli("", "config", "set", "models.providers.openai.baseUrl", "${OPENAI_BASE_URL}")
	require.Equal(t, 1, r.code, "an unresolvable reference is refused: %s", r.out)
	require.Contains(t, r.out, "OPENAI_BASE_URL")

	raw, err := os.ReadFile(e.cfgPath())
	require.NoError(t, err)
	require.NotContains(t, string(raw), bot)
	require.NotContains(t, string(raw), api)
	require.Contains(t, string(raw), `"$enc": "v1"`)
	grepState(t, e.st.StateDir(testharness.Gateway), bot, api)

	r = e.cli("", "config", "get", "channels.telegram.botToken")
	require.Equal(t, 0, r.code, r.out)
	require.Equal(t, "<encrypted>", strings.TrimSpace(r.out))
	r = e.cli("", "config", "get", "channels.telegram.botToken", "--reveal")
	require.Equal(t, 0, r.code, r.out)
	require.Equal(t, bot, strings.TrimSpace(r.out))

	e.restartGateway()
	r = e.cli("", "config", "get", "models.providers.openai.apiKey", "--reveal")
	require.Equal(t, 0, r.code, r.out)
	require.Equal(t, api, strings.TrimSpace(r.out))

	// Rotate: old envelopes still decrypt.
	r = e.cli("", "security", "rotate-key")
	require.Equal(t, 0, r.code, r.out)
	require.Contains(t, r.out, "new primary key k2")
	r = e.cli("", "config", "get", "channels.telegram.botToken", "--reveal")
	require.Equal(t, 0, r.code, r.out)
	require.Equal(t, bot, strings.TrimSpace(r.out))
	// k1 still seals the config and its backups: retiring it is refused,
	// naming what and the fix, and changes nothing.
	r = e.cli("", "security", "rotate-key", "--retire", "k1")
	require.Equal(t, 1, r.code, r.out)
	require.Contains(t, r.out, "key k1 still seals")
	require.Contains(t, r.out, "channels.telegram.botToken")
	require.Contains(t, r.out, "rotate-key --rewrap")
	r = e.cli("", "config", "get", "channels.telegram.botToken", "--reveal")
	require.Equal(t, 0, r.code, r.out)

	// Rewrap: every envelope (config and sealed backups) carries the new kid.
	r = e.cli("", "--json", "security", "rotate-key", "--rewrap")
	require.Equal(t, 0, r.code, r.out)
	var rot struct {
		NewKid    string `json:"new_kid"`
		Rewrapped int    `json:"rewrapped"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.out), &rot), r.out)
	require.Equal(t, "k3", rot.NewKid)
	require.Positive(t, rot.Rewrapped)
	backups, err := filepath.Glob(e.cfgPath() + ".backup*")
	require.NoError(t, err)
	require.NotEmpty(t, backups)
	kids := kidsIn(t, append(backups, e.cfgPath())...)
	require.NotEmpty(t, kids)
	for _, k := range kids {
		require.Equal(t, "k3", k)
	}

	// Retire k1 and k2 with the CLI: nothing breaks, a restart still
	// decrypts everything.
	for _, k := range []string{"k1", "k2"} {
		r = e.cli("", "security", "rotate-key", "--retire", k)
		require.Equal(t, 0, r.code, r.out)
		require.Contains(t, r.out, "retired key "+k)
	}
	// The primary seals everything now: refused, and the fix is a new
	// primary first.
	r = e.cli("", "security", "rotate-key", "--retire", "k3")
	require.Equal(t, 1, r.code, "the primary is never retired: %s", r.out)
	require.Contains(t, r.out, "key k3 still seals")
	require.Contains(t, r.out, "rotate-key --rewrap")
	e.restartGateway()
	r = e.cli("", "config", "get", "channels.telegram.botToken", "--reveal")
	require.Equal(t, 0, r.code, r.out)
	require.Equal(t, bot, strings.TrimSpace(r.out))
	r = e.cli("", "rollback")
	require.Equal(t, 0, r.code, "the rewrapped sealed backup opens after the retire: %s", r.out)
}

// TestSecretsBadInput: each bad input is a clear error naming the file or
// field, a non-zero exit, and an unchanged config file.
func TestSecretsBadInput(t *testing.T) {
	e := startSecrets(t)
	const bot = "4242:AAsecretBOTtokenAAsecretBOTtoken_y"
	r := e.cli(bot, "config", "set", "channels.telegram.botToken", "-")
	require.Equal(t, 0, r.code, r.out)
	r = e.cli("", "config", "set", "channels.telegram.enabled", "false")
	require.Equal(t, 0, r.code, r.out)
	good, err := os.ReadFile(e.cfgPath())
	require.NoError(t, err)
	var tree map[string]any
	require.NoError(t, json.Unmarshal(good, &tree))
	env := tree["channels"].(map[string]any)["telegram"].(map[string]any)["botToken"].(map[string]any)

	write := func(b []byte) {
		require.NoError(t, e.st.WriteStateFile(testharness.Gateway, "moltbot.json", b))
	}
	withEnvelope := func(mut func(map[string]any) map[string]any, path ...string) []byte {
		c := map[string]any{"channels": map[string]any{"telegram": map[string]any{"enabled": false}}}
		cur := c
		for _, k := range path[:len(path)-1] {
			next, ok := cur[k].(map[string]any)
			if !ok {
				next = map[string]any{}
				cur[k] = next
			}
			cur = next
		}
		cp := map[string]any{}
		for k, v := range env {
			cp[k] = v
		}
		cur[path[len(path)-1]] = mut(cp)
		b, err := json.Marshal(c)
		require.NoError(t, err)
		return b
	}
	same := func(m map[string]any) map[string]any { return m }

	t.Run("unknown field path", func(t *testing.T) {
		write(good)
		before := e.cfgHash()
		r := e.cli("", "config", "set", "gateway.authh.token", "x")
		require.Equal(t, 1, r.code, r.out)
		require.Contains(t, r.out, "unknown config path gateway.authh.token")
		require.Contains(t, r.out, "moltbot.json")
		require.Equal(t, before, e.cfgHash())
	})
	tests := []struct {
		name   string
		config []byte
		want   []string
	}{
		{"moved envelope", withEnvelope(same, "models", "providers", "openai", "apiKey"),
			[]string{"models.providers.openai.apiKey", "will not decrypt", "moltbot config set models.providers.openai.apiKey"}},
		{"truncated envelope", withEnvelope(func(m map[string]any) map[string]any { m["ct"] = m["ct"].(string)[:8]; return m }, "channels", "telegram", "botToken"),
			[]string{"channels.telegram.botToken", "truncated"}},
		{"wrong key id", withEnvelope(func(m map[string]any) map[string]any { m["kid"] = "k9"; return m }, "channels", "telegram", "botToken"),
			[]string{"channels.telegram.botToken", `key id "k9"`}},
		{"non-JSON config", []byte("this is { not json"), []string{"moltbot.json", "JSON5"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			write(tc.config)
			before := e.cfgHash()
			r := e.cli("", "config", "validate")
			require.Equal(t, 1, r.code, r.out)
			for _, w := range tc.want {
				require.Contains(t, r.out, w)
			}
			r = e.cli("", "config", "set", "gateway.port", "18789")
			require.Equal(t, 1, r.code, "a write on a broken config is refused: %s", r.out)
			require.Equal(t, before, e.cfgHash(), "config file unchanged")
			// The gateway refuses to start on it, naming the field or file.
			ex, err := e.st.RunOnce(ctxFor(t, time.Minute), testharness.Gateway, testharness.ServiceOptions{
				Binds: []string{onceFile(t, testharness.Gateway, tc.config) + ":/state/moltbot.json"}}, 30*time.Second)
			require.NoError(t, err)
			require.NotEqual(t, 0, ex.Code, ex.Logs)
			require.Contains(t, ex.Logs, tc.want[0])
		})
	}

	t.Run("corrupt key file", func(t *testing.T) {
		key := onceFile(t, testharness.Secretsd, []byte(`{"version":1,"primary":"k1","keys":[{"id":"k1","created":"2026-01-01T00:00:00Z","key":"dG9vLXNob3J0"}]}`))
		ex, err := e.st.RunOnce(ctxFor(t, time.Minute), testharness.Secretsd, testharness.ServiceOptions{
			Binds: []string{key + ":/state/keys/secrets.key"}}, 30*time.Second)
		require.NoError(t, err)
		require.NotEqual(t, 0, ex.Code, ex.Logs)
		require.Contains(t, ex.Logs, "keys/secrets.key")
		require.Contains(t, ex.Logs, "refusing to start")
		require.Contains(t, ex.Logs, "restore keys/secrets.key from your backup")
	})
}

// TestSecretsMigrateUpstream: an upstream config (JSON5 with comments,
// plain secrets in the config and in auth-profiles.json, dm.policy open,
// dangerous flags) is migrated in one command, then passes validate, no
// file under the state dir holds a plain secret, the gateway restarts on
// it, and rollback restores the original bytes.
func TestSecretsMigrateUpstream(t *testing.T) {
	e := startSecrets(t)
	const (
		tok  = "UpstreamGatewayTok3n-abcdefghijklmnopqrstuvwxyz"
		bot  = "777:TGupstreamSECRETtgupstreamSECRET"
		oai  = "sk-UPSTREAMopenaiSECRET0123456789"
		prof = "sk-ant-UPSTREAMprofileSECRET0123456789"
	)
	upstream := []byte(`// written by upstream moltbot
{
  gateway: {
    auth: { token: '` + tok + `' }, // plain
    controlUi: { allowInsecureAuth: true, dangerouslyDisableDeviceAuth: true },
  },
  channels: {
    telegram: { botToken: "` + bot + `", enabled: false, dm: { policy: "open", allowFrom: ["*"] } },
  },
  models: { providers: { openai: { apiKey: "` + oai + `" } } },
}
`)
	profiles := []byte(`{"profiles":{"anthropic:default":{"provider":"anthropic","key":"` + prof + `"}}}` + "\n")
	require.NoError(t, e.st.WriteStateFile(testharness.Gateway, "moltbot.json", upstream))
	require.NoError(t, e.st.WriteStateFile(testharness.Gateway, "agents/main/agent/auth-profiles.json", profiles))

	r := e.cli("", "config", "validate")
	require.Equal(t, 1, r.code, r.out)
	require.Contains(t, r.out, "channels.telegram.dm.policy")

	r = e.cli("", "security", "migrate", "--dry-run")
	require.Equal(t, 0, r.code, r.out)
	require.Contains(t, r.out, "dry run")
	got, err := os.ReadFile(e.cfgPath())
	require.NoError(t, err)
	require.Equal(t, upstream, got, "dry run writes nothing")

	start := time.Now()
	r = e.cli("", "security", "migrate")
	require.Equal(t, 0, r.code, r.out)
	t.Logf("migrate took %s", time.Since(start))
	require.Contains(t, r.out, "sealed under the secrets key")
	require.Contains(t, r.out, "moltbot rollback")

	r = e.cli("", "config", "validate")
	require.Equal(t, 0, r.code, r.out)
	grepState(t, e.st.StateDir(testharness.Gateway), tok, bot, oai, prof)

	r = e.cli("", "security", "migrate")
	require.Equal(t, 0, r.code, r.out)
	require.Contains(t, r.out, "nothing to migrate")

	// The gateway restarts on the migrated config; its token is now the
	// config's (decrypted through secretsd).
	e.restartGateway()
	e.token = tok
	r = e.cli("", "config", "get", "gateway.auth.token", "--reveal")
	require.Equal(t, 0, r.code, r.out)
	require.Equal(t, tok, strings.TrimSpace(r.out))

	// The original holds plain secrets: restoring it needs --yes.
	r = e.cli("", "rollback")
	require.NotEqual(t, 0, r.code, r.out)
	require.Contains(t, r.out, "--yes")
	r = e.cli("", "rollback", "--yes")
	require.Equal(t, 0, r.code, r.out)
	require.Contains(t, r.out, "plain-text secrets")
	got, err = os.ReadFile(e.cfgPath())
	require.NoError(t, err)
	require.Equal(t, upstream, got, "rollback restores the original bytes")
	got, err = os.ReadFile(filepath.Join(e.st.StateDir(testharness.Gateway), "agents/main/agent/auth-profiles.json"))
	require.NoError(t, err)
	require.Equal(t, profiles, got)
}
