package auditrun_test

import (
	"context"
	"crypto/tls"
	"net"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/moltbot/moltbot-secure/gateway/internal/api"
	"github.com/moltbot/moltbot-secure/gateway/internal/auditrun"
	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	"github.com/moltbot/moltbot-secure/services/audit"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/client"
	"github.com/moltbot/moltbot-secure/services/pkiinit"
	"github.com/moltbot/moltbot-secure/services/server"
	"github.com/moltbot/moltbot-secure/services/tlsutil"
)

// gateway serves the real Gateway service with table over real mTLS and
// returns its address, CA file and token.
func gateway(t *testing.T, table auth.Table) (addr, ca, token string) {
	t.Helper()
	pki := filepath.Join(t.TempDir(), "pki")
	_, err := pkiinit.Init(pkiinit.Options{PKIDir: pki})
	require.NoError(t, err)
	ld, err := server.Base{Name: auth.IDGateway, PKIDir: pki, StateDir: t.TempDir(), LogLevel: "error"}.Load()
	require.NoError(t, err)
	token, err = client.ReadToken(filepath.Join(pki, pkiinit.GatewayTokenFile))
	require.NoError(t, err)
	svc := api.New(api.Config{Token: func() string { return token }})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv, err := server.New(server.Config{
		Name:     auth.IDGateway,
		TLS:      ld.TLS.ServerConfig(tls.VerifyClientCertIfGiven),
		Auth:     &auth.Authenticator{Verifier: auth.NewClientPort(auth.NewGatewayToken(token), ld.Tokens), Limiter: auth.NewLimiter()},
		Authz:    table,
		Logger:   hclog.NewNullLogger(),
		Listener: lis,
		Register: func(r grpc.ServiceRegistrar) { api.RegisterService(r, svc) },
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return lis.Addr().String(), tlsutil.FilesFor(pki, auth.IDGateway).CA, token
}

func rolesResult(t *testing.T, rs []audit.ProbeResult) audit.ProbeResult {
	t.Helper()
	for _, r := range rs {
		if r.ID == "gateway.roles_enforced" {
			return r
		}
	}
	t.Fatal("no gateway.roles_enforced probe")
	return audit.ProbeResult{}
}

func TestRolesProbe(t *testing.T) {
	broken := api.Authz()
	broken[gatewayv1.Gateway_SetConfig_FullMethodName] = []string{auth.RoleOwner, auth.RoleClient}
	tests := []struct {
		name     string
		table    auth.Table
		badToken bool
		ok       bool
		severity audit.Severity
		detail   string
	}{
		{"the real table refuses the client", api.Authz(), false, true, "", "PermissionDenied"},
		{"a table letting clients set config is caught", broken, false, false, "", "reached SetConfig's handler"},
		{"a refused probe token is inconclusive, not a breach", api.Authz(), true, false, audit.Info, "inconclusive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr, ca, tok := gateway(t, tc.table)
			if tc.badToken {
				tok = "not-the-gateway-token-0123456789abcdefghijk"
			}
			p := &auditrun.Prober{
				Gateway:      auditrun.Endpoint{Name: auth.IDGateway, Addr: addr, ServerName: auth.IDGateway},
				CAFile:       ca,
				GatewayToken: func() string { return tok },
			}
			r := rolesResult(t, p.Run(context.Background()))
			require.Equal(t, tc.ok, r.OK, r.Detail)
			require.Equal(t, tc.severity, r.Severity)
			require.Contains(t, r.Detail, tc.detail)
		})
	}
}
