//go:build integration

package integration

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	pairingv1 "github.com/moltbot/moltbot-secure/proto/pairing/v1"
	sandboxv1 "github.com/moltbot/moltbot-secure/proto/sandbox/v1"
	secretsv1 "github.com/moltbot/moltbot-secure/proto/secrets/v1"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/testharness"
)

// call is one unary RPC on a connection.
type call func(ctx context.Context, cc *grpc.ClientConn) error

func secretsStatus(ctx context.Context, cc *grpc.ClientConn) error {
	_, err := secretsv1.NewSecretsClient(cc).Status(ctx, &secretsv1.StatusRequest{})
	return err
}

func pairingList(ctx context.Context, cc *grpc.ClientConn) error {
	_, err := pairingv1.NewPairingClient(cc).List(ctx, &pairingv1.ListRequest{})
	return err
}

func sandboxList(ctx context.Context, cc *grpc.ClientConn) error {
	_, err := sandboxv1.NewSandboxClient(cc).List(ctx, &sandboxv1.ListRequest{})
	return err
}

func sandboxEnsure(ctx context.Context, cc *grpc.ClientConn) error {
	_, err := sandboxv1.NewSandboxClient(cc).Ensure(ctx, &sandboxv1.EnsureRequest{})
	return err
}

func gatewayStatus(ctx context.Context, cc *grpc.ClientConn) error {
	_, err := gatewayv1.NewGatewayClient(cc).Status(ctx, &gatewayv1.StatusRequest{})
	return err
}

func healthCheck(ctx context.Context, cc *grpc.ClientConn) error {
	_, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

// internalPort describes one internal service: a method an allowed caller
// may use, and a caller-method pair the table must deny.
type internalPort struct {
	svc      string
	allowed  call   // allowed for the gateway identity
	denied   call   // denied for deniedAs
	deniedAs string // a valid identity not in denied's row
}

func internalPorts() []internalPort {
	return []internalPort{
		{svc: testharness.Secretsd, allowed: secretsStatus, denied: secretsStatus, deniedAs: auth.IDPairingd},
		{svc: testharness.Pairingd, allowed: pairingList, denied: pairingList, deniedAs: auth.IDSecretsd},
		{svc: testharness.Sandboxd, allowed: sandboxList, denied: sandboxEnsure, deniedAs: auth.IDCLI},
	}
}

func newToken(t *testing.T) string {
	t.Helper()
	tok, err := auth.GenerateToken(rand.Reader)
	require.NoError(t, err)
	return tok
}

func requireCode(t *testing.T, want codes.Code, err error) {
	t.Helper()
	require.Errorf(t, err, "want %s", want)
	require.Equalf(t, want, status.Code(err), "error: %v", err)
}

// requireRefused checks that the server refused the client at the TLS
// layer: the raw handshake ends with an alert and an unauthenticated
// service (health) is unreachable over gRPC.
func requireRefused(t *testing.T, st *testharness.Stack, svc string, cfg *tls.Config, alert string) {
	t.Helper()
	ctx := ctxFor(t, 10*time.Second)
	err := st.RawTLS(ctx, svc, cfg)
	require.Error(t, err, "TLS handshake was accepted")
	require.Contains(t, err.Error(), alert)
	cc := st.Conn(t, svc, cfg, "")
	requireCode(t, codes.Unavailable, healthCheck(ctx, cc))
}

func TestGatewayAcceptsTheToken(t *testing.T) {
	st := sharedStack(t)
	for _, tc := range []struct {
		name string
		cc   func(testing.TB) *grpc.ClientConn
	}{
		{"owner: cli cert and cli.token", st.AdminConn},
		{"client: CA only and token", st.TokenConn},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxFor(t, 10*time.Second)
			resp, err := gatewayv1.NewGatewayClient(tc.cc(t)).Status(ctx, &gatewayv1.StatusRequest{})
			require.NoError(t, err)
			require.Equal(t, "token", resp.GetAuthMode())
			require.Len(t, resp.GetServices(), 4)
		})
	}
}

func TestGatewayRefusesBadCallers(t *testing.T) {
	st := sharedStack(t)
	caOnly, err := st.CAOnlyTLS(testharness.Gateway)
	require.NoError(t, err)
	cliCert, err := st.ClientTLS(testharness.CLI, testharness.Gateway)
	require.NoError(t, err)
	cliTok, err := st.Token(auth.IDCLI)
	require.NoError(t, err)
	gwCert, err := st.ClientTLS(testharness.Gateway, testharness.Gateway)
	require.NoError(t, err)
	gwServiceTok, err := st.Token(auth.IDGateway)
	require.NoError(t, err)

	// Each case is one failed authentication from the host address: the
	// shared stack stays below the lockout threshold.
	for _, tc := range []struct {
		name  string
		cfg   *tls.Config
		token string
		want  codes.Code
	}{
		{"no token", caOnly, "", codes.Unauthenticated},
		{"wrong token", caOnly, newToken(t), codes.Unauthenticated},
		{"wrong token with the owner cert", cliCert, newToken(t), codes.Unauthenticated},
		{"cli.token without the cli cert", caOnly, cliTok, codes.Unauthenticated},
		{"a service cert with its own service token", gwCert, gwServiceTok, codes.Unauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxFor(t, 10*time.Second)
			requireCode(t, tc.want, gatewayStatus(ctx, st.Conn(t, testharness.Gateway, tc.cfg, tc.token)))
		})
	}

	t.Run("client role calling an owner method", func(t *testing.T) {
		ctx := ctxFor(t, 10*time.Second)
		_, err := gatewayv1.NewGatewayClient(st.TokenConn(t)).Migrate(ctx, &gatewayv1.MigrateRequest{})
		requireCode(t, codes.PermissionDenied, err)
	})

	t.Run("no client cert: handshake accepted on the client port", func(t *testing.T) {
		require.NoError(t, st.RawTLS(ctxFor(t, 10*time.Second), testharness.Gateway, caOnly))
	})

	t.Run("cert from another CA", func(t *testing.T) {
		foreign, err := st.ForeignTLS(testharness.CLI, testharness.Gateway)
		require.NoError(t, err)
		requireRefused(t, st, testharness.Gateway, foreign, "unknown certificate authority")
	})

	t.Run("plaintext", func(t *testing.T) {
		requirePlaintextRefused(t, st, testharness.Gateway)
	})
}

func requirePlaintextRefused(t *testing.T, st *testharness.Stack, svc string) {
	t.Helper()
	ctx := ctxFor(t, 10*time.Second)
	cc, err := st.DialPlaintext(ctx, svc)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	// Health needs no token: only the transport can refuse it.
	requireCode(t, codes.Unavailable, healthCheck(ctx, cc))
}

func TestInternalPortsRefuseBadCallers(t *testing.T) {
	st := sharedStack(t)
	for _, p := range internalPorts() {
		t.Run(p.svc, func(t *testing.T) {
			t.Run("valid cert: handshake accepted (control)", func(t *testing.T) {
				cfg, err := st.ClientTLS(auth.IDGateway, p.svc)
				require.NoError(t, err)
				require.NoError(t, st.RawTLS(ctxFor(t, 10*time.Second), p.svc, cfg))
			})
			t.Run("no client cert: handshake refused", func(t *testing.T) {
				cfg, err := st.CAOnlyTLS(p.svc)
				require.NoError(t, err)
				requireRefused(t, st, p.svc, cfg, "certificate required")
			})
			t.Run("cert from another CA: handshake refused", func(t *testing.T) {
				// The foreign cert even claims the gateway's identity.
				cfg, err := st.ForeignTLS(auth.IDGateway, p.svc)
				require.NoError(t, err)
				requireRefused(t, st, p.svc, cfg, "unknown certificate authority")
			})
			t.Run("plaintext refused", func(t *testing.T) {
				requirePlaintextRefused(t, st, p.svc)
			})
			t.Run("valid cert, no token: Unauthenticated", func(t *testing.T) {
				cfg, err := st.ClientTLS(auth.IDGateway, p.svc)
				require.NoError(t, err)
				ctx := ctxFor(t, 10*time.Second)
				requireCode(t, codes.Unauthenticated, p.allowed(ctx, st.Conn(t, p.svc, cfg, "")))
			})
			t.Run("valid cert, another identity's token: Unauthenticated", func(t *testing.T) {
				cfg, err := st.ClientTLS(auth.IDGateway, p.svc)
				require.NoError(t, err)
				tok, err := st.Token(auth.IDCLI)
				require.NoError(t, err)
				ctx := ctxFor(t, 10*time.Second)
				requireCode(t, codes.Unauthenticated, p.allowed(ctx, st.Conn(t, p.svc, cfg, tok)))
			})
			t.Run("gateway token on an internal port: Unauthenticated", func(t *testing.T) {
				cfg, err := st.ClientTLS(auth.IDCLI, p.svc)
				require.NoError(t, err)
				tok, err := st.GatewayToken()
				require.NoError(t, err)
				ctx := ctxFor(t, 10*time.Second)
				requireCode(t, codes.Unauthenticated, p.allowed(ctx, st.Conn(t, p.svc, cfg, tok)))
			})
			t.Run(p.deniedAs+" not in the method's table: PermissionDenied", func(t *testing.T) {
				ctx := ctxFor(t, 10*time.Second)
				requireCode(t, codes.PermissionDenied, p.denied(ctx, st.ServiceConn(t, p.svc, p.deniedAs)))
			})
			t.Run("gateway with its cert and token passes auth and authz", func(t *testing.T) {
				ctx := ctxFor(t, 10*time.Second)
				err := p.allowed(ctx, st.ServiceConn(t, p.svc, auth.IDGateway))
				code := status.Code(err)
				require.NotContainsf(t, []codes.Code{codes.Unauthenticated, codes.PermissionDenied, codes.ResourceExhausted, codes.Unavailable},
					code, "error: %v", err)
			})
		})
	}
}
