//go:build integration

package integration

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	sandboxv1 "github.com/moltbot/moltbot-secure/proto/sandbox/v1"
	"github.com/moltbot/moltbot-secure/services/testharness"
)

const testSandboxImage = "moltbot-sandbox-test:latest"

// auditStack starts a stack whose sandbox uses the fast test image, so the
// deep probe's isolation container runs in a second.
func auditStack(t *testing.T, gw testharness.ServiceOptions) *testharness.Stack {
	t.Helper()
	cfg := []byte(`{"agents":{"defaults":{"sandbox":{"docker":{"image":"` + testSandboxImage + `"}}}}}`)
	opts := testharness.Options{GatewayConfig: cfg, Service: map[string]testharness.ServiceOptions{
		testharness.Gateway:  gw,
		testharness.Sandboxd: {Env: testharness.SandboxdEnv("", testSandboxImage, 0)},
	}}
	st := testharness.Start(t, opts)
	return st
}

func findingsByID(fs []*gatewayv1.Finding) map[string]*gatewayv1.Finding {
	m := map[string]*gatewayv1.Finding{}
	for _, f := range fs {
		m[f.GetId()] = f
	}
	return m
}

// A fresh stack with a generated token passes the bar: score >= 85, no
// critical, and every live probe holds.
func TestAuditDeepFreshStack(t *testing.T) {
	st := auditStack(t, testharness.ServiceOptions{})
	ctx := ctxFor(t, 2*time.Minute)
	resp, err := st.AdminGateway(t).Audit(ctx, &gatewayv1.AuditRequest{Deep: true})
	require.NoError(t, err)
	byID := findingsByID(resp.GetFindings())
	for _, f := range resp.GetFindings() {
		require.NotEqual(t, "critical", f.GetSeverity(), "%s: %s", f.GetId(), f.GetDetail())
	}
	require.GreaterOrEqual(t, resp.GetScore(), int32(85), "findings: %v", resp.GetFindings())
	for _, id := range []string{"deep.gateway.auth_enforced", "deep.gateway.plaintext_refused", "deep.secretsd.mtls_required",
		"deep.pairingd.mtls_required", "deep.sandboxd.mtls_required", "deep.secretsd.status", "deep.sandbox.docker",
		"deep.sandbox.image", "deep.sandbox.isolation"} {
		f, ok := byID[id]
		require.True(t, ok, "probe %s missing; got %v", id, resp.GetFindings())
		require.Equal(t, "info", f.GetSeverity(), "%s: %s", id, f.GetDetail())
	}
	t.Logf("fresh stack: score %d (%s), %d findings", resp.GetScore(), resp.GetBand(), len(resp.GetFindings()))
	// The isolation probe's container is gone once the audit answered.
	list, err := sandboxv1.NewSandboxClient(st.AdminConn(t)).List(ctx, &sandboxv1.ListRequest{})
	require.NoError(t, err)
	for _, c := range list.GetContainers() {
		require.NotEqual(t, "agent:audit:probe:deep", c.GetSessionKey(), "audit --deep left its probe container %s", c.GetName())
	}
	// And its workspace volume.
	for _, w := range list.GetWorkspaces() {
		require.NotEqual(t, "agent:audit:probe:deep", w.GetSessionKey(), "audit --deep left its probe workspace %s", w.GetVolume())
	}
}

// The same stack with the gateway's auth switched off by a test-only build:
// the deep probe must notice and report it as critical.
func TestAuditDeepCatchesDisabledAuth(t *testing.T) {
	st := auditStack(t, testharness.ServiceOptions{
		Image: "moltbot-gateway:" + testonlyTag(),
		Env:   map[string]string{"MOLTBOT_TESTONLY_DISABLE_AUTH": "1"},
	})
	ctx := ctxFor(t, 2*time.Minute)
	resp, err := st.AdminGateway(t).Audit(ctx, &gatewayv1.AuditRequest{Deep: true})
	require.NoError(t, err)
	f, ok := findingsByID(resp.GetFindings())["deep.gateway.auth_enforced"]
	require.True(t, ok)
	require.Equal(t, "critical", f.GetSeverity(), f.GetDetail())
	require.Less(t, resp.GetScore(), int32(85))
}
