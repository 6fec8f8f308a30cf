//go:build integration

package integration

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	"github.com/moltbot/moltbot-secure/services/testharness"
)

// TestHarnessKillAndRestart checks the harness's lifecycle helpers that
// later tests rely on: kill one service, see the gateway report it down,
// start it again, and restart the gateway itself (its host port changes).
func TestHarnessKillAndRestart(t *testing.T) {
	st := testharness.Start(t, testharness.Options{Services: []string{testharness.Secretsd, testharness.Pairingd, testharness.Gateway}})
	ctx := ctxFor(t, time.Minute)
	statusOf := func(gw gatewayv1.GatewayClient) map[string]bool {
		resp, err := gw.Status(ctx, &gatewayv1.StatusRequest{})
		require.NoError(t, err)
		up := map[string]bool{}
		for _, s := range resp.GetServices() {
			up[s.GetName()] = s.GetUp()
		}
		return up
	}

	gw := st.AdminGateway(t)
	require.True(t, statusOf(gw)[testharness.Pairingd])

	require.NoError(t, st.Kill(ctx, testharness.Pairingd))
	require.False(t, statusOf(gw)[testharness.Pairingd])

	start := time.Now()
	require.NoError(t, st.StartAgain(ctx, testharness.Pairingd))
	t.Logf("pairingd healthy again %v after start", time.Since(start))
	// The gateway's connection reconnects on its own.
	require.Eventually(t, func() bool { return statusOf(gw)[testharness.Pairingd] }, 15*time.Second, 100*time.Millisecond)

	before, err := st.Addr(ctx, testharness.Gateway)
	require.NoError(t, err)
	start = time.Now()
	require.NoError(t, st.Restart(ctx, testharness.Gateway))
	t.Logf("gateway restarted and healthy in %v", time.Since(start))
	after, err := st.Addr(ctx, testharness.Gateway)
	require.NoError(t, err)
	t.Logf("gateway address %s -> %s", before, after)
	require.True(t, statusOf(st.AdminGateway(t))[testharness.Pairingd])
}
