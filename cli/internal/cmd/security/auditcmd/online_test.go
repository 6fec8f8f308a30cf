package auditcmd

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/cli/internal/clitest"
	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	"github.com/moltbot/moltbot-secure/services/auth"
)

type auditGateway struct {
	gatewayv1.UnimplementedGatewayServer
	called []string
}

func (g *auditGateway) Audit(_ context.Context, r *gatewayv1.AuditRequest) (*gatewayv1.AuditResponse, error) {
	g.called = append(g.called, "Audit")
	return &gatewayv1.AuditResponse{Score: 90, Band: "excellent"}, nil
}

func (g *auditGateway) AuditFix(_ context.Context, r *gatewayv1.AuditFixRequest) (*gatewayv1.AuditFixResponse, error) {
	if r.GetDryRun() {
		g.called = append(g.called, "AuditFix:dry-run")
	} else {
		g.called = append(g.called, "AuditFix")
	}
	return &gatewayv1.AuditFixResponse{Report: &gatewayv1.AuditResponse{Score: 95, Band: "excellent", Fixes: []string{"fixed one"}, ScoreBeforeFix: 80}}, nil
}

// --fix calls the owner-only AuditFix; a plain audit calls Audit.
func TestOnlineAuditAndFix(t *testing.T) {
	fake := &auditGateway{}
	g := clitest.StartGateway(t, fake, auth.Table{
		gatewayv1.Gateway_Audit_FullMethodName:    {auth.RoleOwner, auth.RoleClient},
		gatewayv1.Gateway_AuditFix_FullMethodName: {auth.RoleOwner},
	})
	tests := []struct {
		name    string
		files   []string
		opts    Options
		errPart string
		called  []string
	}{
		{"client audit", clitest.ClientBundle, Options{MinScore: -1}, "", []string{"Audit"}},
		{"client --fix is owner only", clitest.ClientBundle, Options{Fix: true, MinScore: -1}, "owner only: AuditFix", nil},
		{"owner --fix", clitest.OwnerBundle, Options{Fix: true, MinScore: -1}, "", []string{"AuditFix"}},
		{"owner --fix --dry-run", clitest.OwnerBundle, Options{Fix: true, DryRun: true, MinScore: -1}, "", []string{"AuditFix:dry-run"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(cmdutil.EnvGatewayToken, "")
			fake.called = nil
			var out bytes.Buffer
			f := &cmdutil.Factory{StateDirFlag: g.StateDir(t, tc.files), GatewayAddr: g.Addr, Out: &out, Err: &bytes.Buffer{}}
			defer f.Close()
			o := tc.opts
			err := run(context.Background(), f, &o)
			if tc.errPart != "" {
				require.ErrorContains(t, err, tc.errPart)
				require.NotContains(t, err.Error(), "rpc error")
			} else {
				require.NoError(t, err)
			}
			require.Equal(t, tc.called, fake.called)
		})
	}
}
