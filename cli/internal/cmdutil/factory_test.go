package cmdutil_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/moltbot/moltbot-secure/cli/internal/clitest"
	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/errs"
)

type fakeGateway struct {
	gatewayv1.UnimplementedGatewayServer
}

func (fakeGateway) Status(context.Context, *gatewayv1.StatusRequest) (*gatewayv1.StatusResponse, error) {
	return &gatewayv1.StatusResponse{AuthMode: "token"}, nil
}

func (fakeGateway) SetConfig(context.Context, *gatewayv1.SetConfigRequest) (*gatewayv1.SetConfigResponse, error) {
	return &gatewayv1.SetConfigResponse{}, nil
}

func table() auth.Table {
	return auth.Table{
		gatewayv1.Gateway_Status_FullMethodName:    {auth.RoleOwner, auth.RoleClient},
		gatewayv1.Gateway_SetConfig_FullMethodName: {auth.RoleOwner},
	}
}

// The CLI is the owner with the owner's bundle and a client without it; a
// client calling an owner method gets one plain sentence naming the fix.
func TestFactoryRoles(t *testing.T) {
	g := clitest.StartGateway(t, fakeGateway{}, table())
	tests := []struct {
		name     string
		files    []string
		envToken string
		role     string
		setCode  codes.Code
	}{
		{"owner bundle", clitest.OwnerBundle, "", auth.RoleOwner, codes.OK},
		{"owner bundle ignores a stale env token", clitest.OwnerBundle, "stale-token-stale-token-stale-token-xyz", auth.RoleOwner, codes.OK},
		{"cert and key without cli.token is a client", []string{"ca.pem", "cli.pem", "cli-key.pem", "gateway-auth.token"}, "", auth.RoleClient, codes.PermissionDenied},
		{"client bundle", clitest.ClientBundle, "", auth.RoleClient, codes.PermissionDenied},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(cmdutil.EnvGatewayToken, tc.envToken)
			f := &cmdutil.Factory{StateDirFlag: g.StateDir(t, tc.files), GatewayAddr: g.Addr, Out: &bytes.Buffer{}, Err: &bytes.Buffer{}}
			defer f.Close()
			role, err := f.Role()
			require.NoError(t, err)
			require.Equal(t, tc.role, role)
			cc, err := f.Gateway()
			require.NoError(t, err)
			gw := gatewayv1.NewGatewayClient(cc)
			_, err = gw.Status(context.Background(), &gatewayv1.StatusRequest{})
			require.NoError(t, err, "both roles may read status")
			_, err = gw.SetConfig(context.Background(), &gatewayv1.SetConfigRequest{Path: "x", Value: "1"})
			require.Equal(t, tc.setCode, status.Code(err), "err: %v", err)
			if tc.setCode == codes.PermissionDenied {
				require.True(t, errors.Is(err, errs.ErrPermissionDenied))
				require.True(t, strings.HasPrefix(err.Error(), "owner only: SetConfig"), err.Error())
				require.Contains(t, err.Error(), "pki/cli.pem, cli-key.pem, cli.token")
				require.NotContains(t, err.Error(), "rpc error")
			}
		})
	}
}

func TestFactoryClientWithoutToken(t *testing.T) {
	g := clitest.StartGateway(t, fakeGateway{}, table())
	t.Setenv(cmdutil.EnvGatewayToken, "")
	f := &cmdutil.Factory{StateDirFlag: g.StateDir(t, []string{"ca.pem"}), GatewayAddr: g.Addr}
	_, err := f.Gateway()
	require.ErrorIs(t, err, cmdutil.ErrNoGatewayToken)
}
