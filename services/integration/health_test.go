//go:build integration

package integration

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	"github.com/moltbot/moltbot-secure/services/testharness"
)

func TestAllFourHealthy(t *testing.T) {
	st := sharedStack(t)
	t.Logf("shared stack started and healthy (gRPC health from the host) in %v", shared.took)
	ctx := ctxFor(t, 20*time.Second)
	start := time.Now()
	// The images' own healthchecks, as compose runs them.
	require.NoError(t, st.WaitDockerHealthy(ctx, testharness.Services()...))
	t.Logf("docker healthchecks healthy %v later", time.Since(start))

	resp, err := st.AdminGateway(t).Status(ctx, &gatewayv1.StatusRequest{})
	require.NoError(t, err)
	up := map[string]bool{}
	for _, s := range resp.GetServices() {
		require.Truef(t, s.GetUp(), "%s is down: %s", s.GetName(), s.GetError())
		up[s.GetName()] = true
	}
	for _, svc := range testharness.Services() {
		require.Truef(t, up[svc], "%s missing from Gateway.Status", svc)
	}
}
