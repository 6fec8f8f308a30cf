//go:build integration

package integration

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/services/testharness"
)

// requireRefusedStart checks a refused start: non-zero exit, no panic, and
// a last line (the fatal one) naming the problem and the fix. With oneLine
// that line is all the output.
func requireRefusedStart(t *testing.T, res testharness.Exit, oneLine bool, wants ...string) {
	t.Helper()
	t.Logf("exit %d: %s", res.Code, strings.TrimSpace(res.Logs))
	require.NotZero(t, res.Code, "logs: %s", res.Logs)
	require.NotContains(t, res.Logs, "panic")
	require.NotContains(t, res.Logs, "goroutine ")
	lines := strings.Split(strings.TrimSpace(res.Logs), "\n")
	if oneLine {
		require.Len(t, lines, 1, "want one line, got: %s", res.Logs)
	}
	last := lines[len(lines)-1]
	for _, w := range wants {
		require.Contains(t, last, w)
	}
}

func TestWeakGatewayTokenRefused(t *testing.T) {
	st := sharedStack(t)
	for _, tc := range []struct{ name, token string }{
		{"too short", "correct-horse-battery"},
		{"too few distinct characters", strings.Repeat("abcdefgh", 6)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxFor(t, time.Minute)
			res, err := st.RunOnce(ctx, testharness.Gateway, testharness.ServiceOptions{
				Env: map[string]string{"CLAWDBOT_GATEWAY_TOKEN": tc.token},
			}, 30*time.Second)
			require.NoError(t, err)
			requireRefusedStart(t, res, false, "CLAWDBOT_GATEWAY_TOKEN", "at least 32 characters", "20 distinct", "moltbot token generate")
			require.NotContains(t, res.Logs, tc.token, "the token itself must never be logged")
		})
	}
}

// A weak $CLAWDBOT_GATEWAY_TOKEN is refused at once, naming the rule, even
// with secretsd unreachable (issue 14: it used to wait 15 s for secretsd,
// then say "secretsd is unreachable" instead of the token rule).
func TestWeakEnvTokenRefusedBeforeSecretsd(t *testing.T) {
	st := sharedStack(t)
	ctx := ctxFor(t, time.Minute)
	start := time.Now()
	res, err := st.RunOnce(ctx, testharness.Gateway, testharness.ServiceOptions{
		Env: map[string]string{"CLAWDBOT_GATEWAY_TOKEN": "correct-horse-battery", "MOLTBOT_SECRETSD_ADDR": "nowhere.invalid:18790"},
	}, 30*time.Second)
	require.NoError(t, err)
	requireRefusedStart(t, res, false, "CLAWDBOT_GATEWAY_TOKEN", "at least 32 characters", "moltbot token generate")
	require.NotContains(t, res.Logs, "secretsd is unreachable")
	require.Less(t, time.Since(start), 10*time.Second, "refused before any wait for secretsd")
}

func TestMissingCertsRefused(t *testing.T) {
	st := sharedStack(t)
	empty := t.TempDir()
	// Like an empty volume: readable, just nothing in it.
	require.NoError(t, os.Chmod(empty, 0o755))
	for _, svc := range testharness.Services() {
		t.Run(svc, func(t *testing.T) {
			t.Parallel()
			ctx := ctxFor(t, time.Minute)
			res, err := st.RunOnce(ctx, svc, testharness.ServiceOptions{PKIDir: empty}, 30*time.Second)
			require.NoError(t, err)
			requireRefusedStart(t, res, true, "/pki/", "moltbot certs init")
		})
	}
}

// TestGatewayNamesSecretsdRefusal starts a gateway whose service token does
// not match pki/digests.json: secretsd refuses it, and the gateway's fatal
// line names that refusal and its fix, not "secretsd is unreachable".
func TestGatewayNamesSecretsdRefusal(t *testing.T) {
	st := sharedStack(t)
	pki := t.TempDir()
	require.NoError(t, os.Chmod(pki, 0o755))
	entries, err := os.ReadDir(st.PKIDir())
	require.NoError(t, err)
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		src := filepath.Join(st.PKIDir(), e.Name())
		fi, err := os.Stat(src)
		require.NoError(t, err)
		b, err := os.ReadFile(src)
		require.NoError(t, err)
		if e.Name() == testharness.Gateway+".token" {
			b = []byte(newToken(t) + "\n") // not the digest secretsd holds
		}
		dst := filepath.Join(pki, e.Name())
		require.NoError(t, os.WriteFile(dst, b, fi.Mode().Perm()))
		if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
			require.NoError(t, os.Chown(dst, int(sys.Uid), int(sys.Gid)))
		}
	}
	ctx := ctxFor(t, time.Minute)
	res, err := st.RunOnce(ctx, testharness.Gateway, testharness.ServiceOptions{PKIDir: pki}, 45*time.Second)
	require.NoError(t, err)
	requireRefusedStart(t, res, false, "secretsd refused the gateway's credentials", "moltbot certs init", "digests.json")
	require.NotContains(t, res.Logs, "unreachable")
}
