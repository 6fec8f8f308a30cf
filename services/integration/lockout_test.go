//go:build integration

package integration

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	secretsv1 "github.com/moltbot/moltbot-secure/proto/secrets/v1"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/testharness"
)

// TestLockoutAfterTenFailures locks the host's address out of its own
// gateway and secretsd (the shared stack must stay usable), then checks
// that a client from another address, the CLI container on the stack's
// network, is still served.
//
// Every connection from the host through Docker's port mapping reaches the
// container from one address (the bridge gateway), so the "other address"
// is a container on the network, not a second host client.
func TestLockoutAfterTenFailures(t *testing.T) {
	st := testharness.Start(t, testharness.Options{Services: []string{testharness.Gateway, testharness.Secretsd}})
	ctx := ctxFor(t, time.Minute)

	caOnly, err := st.CAOnlyTLS(testharness.Gateway)
	require.NoError(t, err)
	gwCert, err := st.ClientTLS(auth.IDGateway, testharness.Secretsd)
	require.NoError(t, err)
	goodGW, err := st.GatewayToken()
	require.NoError(t, err)
	goodSvc, err := st.Token(auth.IDGateway)
	require.NoError(t, err)

	for _, tc := range []struct {
		svc  string
		dial func(token string) *grpc.ClientConn
		call func(cc *grpc.ClientConn, opts ...grpc.CallOption) error
		good string
	}{
		{
			svc:  testharness.Gateway,
			dial: func(tok string) *grpc.ClientConn { return st.Conn(t, testharness.Gateway, caOnly, tok) },
			call: func(cc *grpc.ClientConn, opts ...grpc.CallOption) error {
				_, err := gatewayv1.NewGatewayClient(cc).Status(ctx, &gatewayv1.StatusRequest{}, opts...)
				return err
			},
			good: goodGW,
		},
		{
			svc:  testharness.Secretsd,
			dial: func(tok string) *grpc.ClientConn { return st.Conn(t, testharness.Secretsd, gwCert, tok) },
			call: func(cc *grpc.ClientConn, opts ...grpc.CallOption) error {
				_, err := secretsv1.NewSecretsClient(cc).Status(ctx, &secretsv1.StatusRequest{}, opts...)
				return err
			},
			good: goodSvc,
		},
	} {
		t.Run(tc.svc, func(t *testing.T) {
			bad := tc.dial(newToken(t))
			for i := 1; i <= 10; i++ {
				err := tc.call(bad)
				if i < 10 {
					requireCode(t, codes.Unauthenticated, err)
					continue
				}
				// The tenth failure inside the window trips the lockout; its
				// own answer may already say so.
				require.Containsf(t, []codes.Code{codes.Unauthenticated, codes.ResourceExhausted}, status.Code(err), "call 10: %v", err)
			}
			// The eleventh bad token in a row is refused by the lockout.
			var trailer metadata.MD
			err := tc.call(bad, grpc.Trailer(&trailer))
			requireCode(t, codes.ResourceExhausted, err)
			require.Contains(t, status.Convert(err).Message(), "retry after")
			ra := trailer.Get("retry-after")
			require.Len(t, ra, 1, "retry-after trailer")
			secs, err := strconv.Atoi(ra[0])
			require.NoError(t, err)
			require.True(t, secs > 0 && secs <= 60, "retry-after %d s", secs)

			// Locked out means locked out: the right token from the same
			// address is refused too, so the lockout is no oracle.
			requireCode(t, codes.ResourceExhausted, tc.call(tc.dial(tc.good)))
		})
	}

	// The limiter keys on the verified certificate identity plus the
	// address: the locked-out buckets above are "no cert@host" at the
	// gateway and "gateway@host" at secretsd. Other identities from the
	// same host address keep working.
	t.Run("the owner from the locked address is unaffected at the gateway", func(t *testing.T) {
		_, err := st.AdminGateway(t).Status(ctx, &gatewayv1.StatusRequest{})
		require.NoError(t, err)
	})
	t.Run("another identity from the locked address is unaffected at secretsd", func(t *testing.T) {
		_, err := secretsv1.NewSecretsClient(st.ServiceConn(t, testharness.Secretsd, auth.IDCLI)).Status(ctx, &secretsv1.StatusRequest{})
		require.NoError(t, err)
	})

	t.Run("a client from another address is unaffected", func(t *testing.T) {
		res, err := st.RunCLI(ctx, nil, "status", "--json")
		require.NoError(t, err)
		out, up := parseStatus(t, res.Logs)
		// pairingd and sandboxd are not part of this stack, so the CLI
		// exits 3 (degraded); the gateway itself answered.
		require.Equal(t, "token", out.AuthMode, "cli output: %s", res.Logs)
		require.True(t, up[testharness.Gateway], "cli output: %s", res.Logs)
		require.True(t, up[testharness.Secretsd], "gateway -> secretsd: %s", res.Logs)
		require.Equal(t, 3, res.Code, "cli output: %s", res.Logs)
	})
}
