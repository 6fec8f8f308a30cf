//go:build integration

package integration

import (
	"os"
	"strings"
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
