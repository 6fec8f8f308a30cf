//go:build integration

package integration

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	"github.com/moltbot/moltbot-secure/services/testharness"
)

// TestConfigModelRefusals: the real gateway's SetConfig validates the
// resulting config with the one config model, so values sandboxd or the
// channels would refuse later are refused now, naming the field and the
// fix, with nothing written.
func TestConfigModelRefusals(t *testing.T) {
	ls := testharness.StartLocal(t, testharness.LocalOptions{Services: []string{testharness.Secretsd, testharness.Gateway}})
	gw := ls.AdminGateway(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := gw.SetConfig(ctx, &gatewayv1.SetConfigRequest{Path: "channels.telegram.dmPolicy", Value: "pairing"})
	require.NoError(t, err)
	before, err := os.ReadFile(ls.ConfigPath())
	require.NoError(t, err)

	tests := []struct {
		name, path, value, want string
	}{
		{"memory lots", "agents.defaults.sandbox.docker.memory", "lots",
			`agents.defaults.sandbox.docker.memory: "lots" is not a positive size; want a number of bytes or a number with a k, m or g suffix, e.g. 512m or 1g`},
		{"memory too small", "agents.defaults.sandbox.docker.memory", "1m", "outside 32 MiB..64 GiB"},
		{"pids", "agents.defaults.sandbox.docker.pidsLimit", "1", "1 outside 16..4096"},
		{"misspelt channel", "channels.telegarm.dmPolicy", "pairing", "did you mean channels.telegram?"},
		{"dm policy enum", "channels.telegram.dmPolicy", "friends", `"friends" is not one of "pairing", "allowlist", "disabled"`},
		{"string for a list", "channels.telegram.groups.allowFrom", "123", "want an array"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := gw.SetConfig(ctx, &gatewayv1.SetConfigRequest{Path: tt.path, Value: tt.value})
			require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
			require.Contains(t, status.Convert(err).Message(), tt.want)
			after, err := os.ReadFile(ls.ConfigPath())
			require.NoError(t, err)
			require.Equal(t, before, after, "nothing written")
		})
	}

	// Encrypt on every write: a plaintext free-form secret put in the file
	// by hand is sealed by the next unrelated write, and the reply says so.
	require.NoError(t, os.WriteFile(ls.ConfigPath(), []byte(`{channels: {telegram: {dmPolicy: "pairing"}}, env: {OPENAI_API_KEY: "sk-plaintext-by-hand"}, talk: {apiKey: "talk-plaintext"}}`), 0o600))
	resp, err := gw.SetConfig(ctx, &gatewayv1.SetConfigRequest{Path: "logging.level", Value: "info"})
	require.NoError(t, err)
	require.Equal(t, []string{"env.OPENAI_API_KEY", "talk.apiKey"}, resp.GetEncryptedPaths())
	after, err := os.ReadFile(ls.ConfigPath())
	require.NoError(t, err)
	require.NotContains(t, string(after), "sk-plaintext-by-hand")
	require.NotContains(t, string(after), "talk-plaintext")
}
