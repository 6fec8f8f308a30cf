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
	addr, ca, token, _ = gatewaySelf(t, table)
	return addr, ca, token
}

// gatewaySelf is gateway, also returning a client config with the
// gateway's own certificate (what the real gateway's probe presents).
func gatewaySelf(t *testing.T, table auth.Table) (addr, ca, token string, self *tls.Config) {
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
		Auth:     &auth.Authenticator{Verifier: auth.NewClientPort(auth.NewGatewayToken(token), ld.Tokens), Limiter: auth.NewLimiter(), Self: auth.IDGateway},
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
	return lis.Addr().String(), tlsutil.FilesFor(pki, auth.IDGateway).CA, token, ld.TLS.ClientConfig(auth.IDGateway)
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

func probeResult(t *testing.T, rs []audit.ProbeResult, id string) audit.ProbeResult {
	t.Helper()
	for _, r := range rs {
		if r.ID == id {
			return r
		}
	}
	t.Fatalf("no %s probe", id)
	return audit.ProbeResult{}
}

// Deep audits back to back (issue 14: 50 in a row) never lock out their
// own no-token probe: it presents the gateway's own certificate, which the
// gateway refuses without a token (Unauthenticated) but does not count.
// Without that certificate the 11th run is locked out and fails.
func TestAuthProbeNeverLocksItselfOut(t *testing.T) {
	addr, ca, tok, self := gatewaySelf(t, api.Authz())
	for _, tc := range []struct {
		name     string
		self     *tls.Config
		lockedAt int // the run whose probe is locked out; 0: never
	}{
		{"with the gateway's own certificate", self, 0},
		{"with the CA only (a client of the same address)", nil, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &auditrun.Prober{
				Gateway:      auditrun.Endpoint{Name: auth.IDGateway, Addr: addr, ServerName: auth.IDGateway},
				CAFile:       ca,
				GatewayToken: func() string { return tok },
				SelfTLS:      tc.self,
			}
			for i := 1; i <= 15; i++ {
				rs := p.Run(context.Background())
				r := probeResult(t, rs, "gateway.auth_enforced")
				if tc.lockedAt != 0 && i >= tc.lockedAt {
					require.False(t, r.OK, "run %d: %s", i, r.Detail)
					require.Contains(t, r.Detail, "ResourceExhausted")
					return
				}
				require.True(t, r.OK, "run %d: %s", i, r.Detail)
				require.Contains(t, r.Detail, "Unauthenticated")
				require.True(t, probeResult(t, rs, "gateway.roles_enforced").OK, "run %d: the client's bucket is never locked by the probe", i)
			}
			require.Zero(t, tc.lockedAt, "never locked out")
		})
	}
}
