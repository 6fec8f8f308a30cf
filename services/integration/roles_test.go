//go:build integration

package integration

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	pairingv1 "github.com/moltbot/moltbot-secure/proto/pairing/v1"
	sandboxv1 "github.com/moltbot/moltbot-secure/proto/sandbox/v1"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/testharness"
)

// The deployed gateway's roles, stated here independently of the table in
// gateway/internal/api/authz.go (which this module cannot import): what a
// client may call, what nobody may call, and everything else owner only.
var (
	clientMethods = map[string]bool{
		gatewayv1.Gateway_Status_FullMethodName:          true,
		gatewayv1.Gateway_GetConfig_FullMethodName:       true,
		gatewayv1.Gateway_ValidateConfig_FullMethodName:  true,
		gatewayv1.Gateway_Audit_FullMethodName:           true,
		gatewayv1.Gateway_Send_FullMethodName:            true,
		gatewayv1.Gateway_ListSessions_FullMethodName:    true,
		gatewayv1.Gateway_ListSecretFiles_FullMethodName: true,
	}
	notExposed = map[string]bool{
		pairingv1.Pairing_Request_FullMethodName:   true,
		pairingv1.Pairing_IsAllowed_FullMethodName: true,
		pairingv1.Pairing_Import_FullMethodName:    true,
		sandboxv1.Sandbox_Ensure_FullMethodName:    true,
		sandboxv1.Sandbox_Exec_FullMethodName:      true,
	}
	// requests that keep an owner's call harmless; others are empty.
	harmless = map[string]proto.Message{
		gatewayv1.Gateway_Migrate_FullMethodName:   &gatewayv1.MigrateRequest{DryRun: true},
		gatewayv1.Gateway_AuditFix_FullMethodName:  &gatewayv1.AuditFixRequest{DryRun: true},
		gatewayv1.Gateway_SetConfig_FullMethodName: &gatewayv1.SetConfigRequest{Path: ""},
	}
)

type servedMethod struct {
	name   string
	stream bool
}

func clientPortMethods() []servedMethod {
	var out []servedMethod
	for _, d := range []*grpc.ServiceDesc{&gatewayv1.Gateway_ServiceDesc, &pairingv1.Pairing_ServiceDesc, &sandboxv1.Sandbox_ServiceDesc} {
		for _, m := range d.Methods {
			out = append(out, servedMethod{"/" + d.ServiceName + "/" + m.MethodName, false})
		}
		for _, s := range d.Streams {
			out = append(out, servedMethod{"/" + d.ServiceName + "/" + s.StreamName, true})
		}
	}
	return out
}

// invoke calls any method with a harmless request; a stream is read until
// its end or a 2 s deadline (an open owner Watch is "not denied").
func invoke(ctx context.Context, cc *grpc.ClientConn, m servedMethod) error {
	req := harmless[m.name]
	if req == nil {
		req = &emptypb.Empty{}
	}
	if !m.stream {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		return cc.Invoke(cctx, m.name, req, &emptypb.Empty{})
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	s, err := cc.NewStream(cctx, &grpc.StreamDesc{ServerStreams: true}, m.name)
	if err != nil {
		return err
	}
	if err := s.SendMsg(req); err != nil {
		return err
	}
	if err := s.CloseSend(); err != nil {
		return err
	}
	for {
		if err := s.RecvMsg(&emptypb.Empty{}); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// TestRolesOnTheRealGateway calls every method served on the gateway's
// client port as every kind of caller against the real container. Callers
// that authenticate go first; the two that fail authentication go last,
// because ten failures a minute lock their bucket: a failing caller's first
// nine calls must be Unauthenticated and the rest Unauthenticated or
// ResourceExhausted (both refused before any handler). Finally the owner,
// whose certificate has its own bucket, still gets in although the host
// address is locked for token-only callers.
func TestRolesOnTheRealGateway(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	st, err := testharness.New(ctx, testharness.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	st.LogOnFailure(t)

	caOnly, err := st.CAOnlyTLS(testharness.Gateway)
	require.NoError(t, err)
	svcCert, err := st.ClientTLS(testharness.Secretsd, testharness.Gateway)
	require.NoError(t, err)
	cliCert, err := st.ClientTLS(testharness.CLI, testharness.Gateway)
	require.NoError(t, err)
	gwTok, err := st.GatewayToken()
	require.NoError(t, err)
	svcTok, err := st.Token(testharness.Secretsd)
	require.NoError(t, err)

	conn := func(cfg *tls.Config, tok string) *grpc.ClientConn { return st.Conn(t, testharness.Gateway, cfg, tok) }
	callers := []struct {
		name string
		cc   *grpc.ClientConn
		role string // "" = fails authentication
	}{
		{"client (gateway token, no cert)", st.TokenConn(t), auth.RoleClient},
		{"service cert + gateway token", conn(svcCert, gwTok), auth.RoleClient},
		{"cli cert + gateway token", conn(cliCert, gwTok), auth.RoleClient},
		{"owner (cli cert + cli.token)", st.AdminConn(t), auth.RoleOwner},
		{"service cert + own service token", conn(svcCert, svcTok), ""},
		{"no token", conn(caOnly, ""), ""},
	}
	methods := clientPortMethods()
	require.Greater(t, len(methods), 25)
	for _, c := range callers {
		failures := 0
		for _, m := range methods {
			err := invoke(ctx, c.cc, m)
			code := status.Code(err)
			name := strings.TrimPrefix(m.name, "/") + " as " + c.name
			switch {
			case c.role == "":
				failures++
				if failures < 10 {
					require.Equal(t, codes.Unauthenticated, code, "%s: %v", name, err)
				} else {
					require.Contains(t, []codes.Code{codes.Unauthenticated, codes.ResourceExhausted}, code, "%s: %v", name, err)
				}
			case notExposed[m.name]:
				require.Equal(t, codes.PermissionDenied, code, "%s: %v", name, err)
			case c.role == auth.RoleOwner || clientMethods[m.name]:
				require.NotContains(t, []codes.Code{codes.Unauthenticated, codes.PermissionDenied, codes.ResourceExhausted}, code, "%s: %v", name, err)
			default:
				require.Equal(t, codes.PermissionDenied, code, "%s: %v", name, err)
				require.Contains(t, status.Convert(err).Message(), "owner only:", name)
			}
		}
	}

	// The host address is now locked for token-only callers ...
	err = invoke(ctx, st.TokenConn(t), servedMethod{name: gatewayv1.Gateway_Status_FullMethodName})
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
	// ... but not for the owner.
	require.NoError(t, invoke(ctx, st.AdminConn(t), servedMethod{name: gatewayv1.Gateway_Status_FullMethodName}), "the owner is not locked out")
	_, err = gatewayv1.NewGatewayClient(st.AdminConn(t)).Migrate(ctx, &gatewayv1.MigrateRequest{DryRun: true})
	require.NoError(t, err, "the owner may still call owner methods")
}
