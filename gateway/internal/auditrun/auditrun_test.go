package auditrun_test

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/gateway/internal/auditrun"
	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	"github.com/moltbot/moltbot-secure/services/auth"
)

// No config file means the documented defaults: no config finding at all,
// nothing critical (issue 14: "config.invalid ... does not exist", 80).
func TestMissingConfigMeansDefaults(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	require.NoError(t, os.MkdirAll(state, 0o700))
	tok, err := auth.GenerateToken(rand.Reader)
	require.NoError(t, err)
	r := auditrun.New(auditrun.Config{
		StateDir: state, ConfigPath: filepath.Join(state, "moltbot.json"), PKIDir: filepath.Join(state, "pki"),
		Token: func() (string, string) { return tok, "$CLAWDBOT_GATEWAY_TOKEN_FILE" },
	})
	resp, err := r.Audit(context.Background(), &gatewayv1.AuditRequest{})
	require.NoError(t, err)
	for _, f := range resp.GetFindings() {
		require.False(t, strings.HasPrefix(f.GetId(), "config."), "%s: %s", f.GetId(), f.GetDetail())
		require.NotEqual(t, "critical", f.GetSeverity(), "%s: %s", f.GetId(), f.GetDetail())
	}
}
