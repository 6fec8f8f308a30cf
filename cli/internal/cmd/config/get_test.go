package config

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/cli/internal/clitest"
	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	"github.com/moltbot/moltbot-secure/services/auth"
)

// getGateway answers GetConfig with the placeholder and RevealConfig with
// the value, and records which one was called.
type getGateway struct {
	gatewayv1.UnimplementedGatewayServer
	called []string
}

func (g *getGateway) GetConfig(_ context.Context, r *gatewayv1.GetConfigRequest) (*gatewayv1.GetConfigResponse, error) {
	g.called = append(g.called, "GetConfig")
	return &gatewayv1.GetConfigResponse{ValueJson: `"<encrypted>"`}, nil
}

func (g *getGateway) RevealConfig(_ context.Context, r *gatewayv1.RevealConfigRequest) (*gatewayv1.RevealConfigResponse, error) {
	g.called = append(g.called, "RevealConfig:"+r.GetPath())
	return &gatewayv1.RevealConfigResponse{ValueJson: `"plain-value"`}, nil
}

func TestGetRevealCallsRevealConfig(t *testing.T) {
	fake := &getGateway{}
	g := clitest.StartGateway(t, fake, auth.Table{
		gatewayv1.Gateway_GetConfig_FullMethodName:    {auth.RoleOwner, auth.RoleClient},
		gatewayv1.Gateway_RevealConfig_FullMethodName: {auth.RoleOwner},
	})
	tests := []struct {
		name    string
		files   []string
		reveal  bool
		out     string
		errPart string
		called  string
	}{
		{"client: get", clitest.ClientBundle, false, "<encrypted>", "", "GetConfig"},
		{"client: --reveal is owner only", clitest.ClientBundle, true, "", "owner only: RevealConfig", ""},
		{"owner: --reveal", clitest.OwnerBundle, true, "plain-value", "", "RevealConfig:channels.telegram.botToken"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(cmdutil.EnvGatewayToken, "")
			fake.called = nil
			var out bytes.Buffer
			f := &cmdutil.Factory{StateDirFlag: g.StateDir(t, tc.files), GatewayAddr: g.Addr, Out: &out, Err: &bytes.Buffer{}}
			defer f.Close()
			err := getRun(context.Background(), f, &GetOptions{Path: "channels.telegram.botToken", Reveal: tc.reveal})
			if tc.errPart != "" {
				require.ErrorContains(t, err, tc.errPart)
				require.NotContains(t, err.Error(), "rpc error")
				require.Empty(t, fake.called, "refused before any handler")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.out, strings.TrimSpace(out.String()))
			require.Equal(t, []string{tc.called}, fake.called)
		})
	}
}
