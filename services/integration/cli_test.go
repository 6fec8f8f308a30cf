//go:build integration

package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/services/testharness"
)

// moltbotBinary is bin/moltbot from `make images` (the same binary the cli
// image carries), else a fresh build into a temp dir.
func moltbotBinary(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	bin := filepath.Join(root, "bin", "moltbot")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	bin = filepath.Join(t.TempDir(), "moltbot")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/moltbot")
	cmd.Dir = filepath.Join(root, "cli")
	out, err := cmd.CombinedOutput()
	require.NoErrorf(t, err, "build moltbot: %s", out)
	return bin
}

type cliResult struct {
	code int
	out  string
}

func runMoltbot(ctx context.Context, t testing.TB, bin string, env []string, args ...string) cliResult {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
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

func TestCLIStatusFromTheHost(t *testing.T) {
	st := sharedStack(t)
	bin := moltbotBinary(t)
	ctx := ctxFor(t, time.Minute)
	addr, err := st.Addr(ctx, testharness.Gateway)
	require.NoError(t, err)
	admin, err := st.ExportClientBundle(t.TempDir())
	require.NoError(t, err)
	// A bundle without the owner's cert: the CLI is a client (gateway token).
	tokenOnly, err := st.ExportClientBundle(t.TempDir())
	require.NoError(t, err)
	require.NoError(t, os.Remove(filepath.Join(tokenOnly, "pki", "cli.pem")))
	require.NoError(t, os.Remove(filepath.Join(tokenOnly, "pki", "cli-key.pem")))

	for _, tc := range []struct {
		name, stateDir, gateway string
	}{
		{"owner bundle via 127.0.0.1", admin, addr},
		{"owner bundle via localhost", admin, strings.Replace(addr, "127.0.0.1", "localhost", 1)},
		{"token-only bundle", tokenOnly, addr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := []string{"MOLTBOT_STATE_DIR=" + tc.stateDir, "MOLTBOT_GATEWAY=" + tc.gateway, "CLAWDBOT_GATEWAY_TOKEN="}
			res := runMoltbot(ctx, t, bin, env, "status", "--json")
			require.Equalf(t, 0, res.code, "output: %s", res.out)
			requireAllUp(t, res.out)
			// The human form exits 0 too and names every service.
			res = runMoltbot(ctx, t, bin, env, "status")
			require.Equalf(t, 0, res.code, "output: %s", res.out)
			for _, svc := range testharness.Services() {
				require.Contains(t, res.out, svc)
			}
		})
	}

	t.Run("wrong token: a client CLI says the gateway refused it (exit 4), not down", func(t *testing.T) {
		tok := newToken(t)
		env := []string{"MOLTBOT_STATE_DIR=" + tokenOnly, "MOLTBOT_GATEWAY=" + addr, "CLAWDBOT_GATEWAY_TOKEN=" + tok}
		res := runMoltbot(ctx, t, bin, env, "status")
		require.Equalf(t, 4, res.code, "output: %s", res.out)
		require.Contains(t, res.out, "REFUSED")
		require.Contains(t, res.out, "rejected the token from $CLAWDBOT_GATEWAY_TOKEN: invalid token")
		require.NotContains(t, res.out, "DOWN")
		require.NotContains(t, res.out, tok, "never the token")
	})

	t.Run("the owner never uses the gateway token, so a wrong one does not matter", func(t *testing.T) {
		env := []string{"MOLTBOT_STATE_DIR=" + admin, "MOLTBOT_GATEWAY=" + addr, "CLAWDBOT_GATEWAY_TOKEN=" + newToken(t)}
		res := runMoltbot(ctx, t, bin, env, "status")
		require.Equalf(t, 0, res.code, "output: %s", res.out)
	})

	t.Run("a client CLI is refused an owner method with the fix", func(t *testing.T) {
		env := []string{"MOLTBOT_STATE_DIR=" + tokenOnly, "MOLTBOT_GATEWAY=" + addr, "CLAWDBOT_GATEWAY_TOKEN="}
		res := runMoltbot(ctx, t, bin, env, "config", "get", "gateway.auth.token", "--reveal")
		require.Equalf(t, 4, res.code, "output: %s", res.out)
		require.Contains(t, res.out, "owner only: RevealConfig")
		require.Contains(t, res.out, "pki/cli.pem, cli-key.pem, cli.token")
		require.NotContains(t, res.out, "rpc error")
	})
}

func TestCLIStatusInsideTheNetwork(t *testing.T) {
	st := sharedStack(t)
	// What `docker-compose run --rm cli status` does.
	res, err := st.RunCLI(ctxFor(t, time.Minute), nil, "status", "--json")
	require.NoError(t, err)
	require.Equalf(t, 0, res.Code, "output: %s", res.Logs)
	requireAllUp(t, res.Logs)
}

// cliStatus is the part of `moltbot status --json` the tests read.
type cliStatus struct {
	Services []struct {
		Name  string `json:"name"`
		Up    bool   `json:"up"`
		Error string `json:"error"`
	} `json:"services"`
	AuthMode string `json:"auth_mode"`
}

func parseStatus(t *testing.T, out string) (cliStatus, map[string]bool) {
	t.Helper()
	var st cliStatus
	require.NoErrorf(t, json.Unmarshal([]byte(out), &st), "cli output: %s", out)
	up := map[string]bool{}
	for _, s := range st.Services {
		up[s.Name] = s.Up
	}
	return st, up
}

func requireAllUp(t *testing.T, out string) {
	t.Helper()
	st, up := parseStatus(t, out)
	require.Equal(t, "token", st.AuthMode, "cli output: %s", out)
	for _, svc := range testharness.Services() {
		require.Truef(t, up[svc], "%s not up; cli output: %s", svc, out)
	}
}
