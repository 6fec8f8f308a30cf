package sandboxproxy

import (
	"context"
	"net"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	sandboxv1 "github.com/moltbot/moltbot-secure/proto/sandbox/v1"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// upstream stands in for sandboxd (tested on the real engine in its module).
type upstream struct {
	sandboxv1.UnimplementedSandboxServer
	explained *sandboxv1.ExplainRequest
}

func (u *upstream) Explain(_ context.Context, r *sandboxv1.ExplainRequest) (*sandboxv1.ExplainResponse, error) {
	u.explained = r
	return &sandboxv1.ExplainResponse{Sandboxed: true, Items: []*sandboxv1.ExplainItem{{Name: "profile", Why: "sandboxd"}}}, nil
}

func (u *upstream) List(context.Context, *sandboxv1.ListRequest) (*sandboxv1.ListResponse, error) {
	return nil, status.Error(codes.Unavailable, "Docker is not reachable")
}

func serve(t *testing.T, s sandboxv1.SandboxServer) sandboxv1.SandboxClient {
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		resp, err := h(ctx, req)
		return resp, errs.ToStatus(err)
	}))
	sandboxv1.RegisterSandboxServer(srv, s)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	cc, err := grpc.NewClient("passthrough:///bufnet", grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
		return lis.DialContext(ctx)
	}), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	return sandboxv1.NewSandboxClient(cc)
}

func TestForwarding(t *testing.T) {
	up := &upstream{}
	pol := &sandboxv1.Policy{Mode: sandboxv1.Mode_MODE_ALL, PidsLimit: 64}
	c := serve(t, New(Config{Sandbox: serve(t, up), Policy: func() (*sandboxv1.Policy, error) { return pol, nil }}))
	ctx := context.Background()

	_, err := c.Explain(ctx, &sandboxv1.ExplainRequest{})
	require.NoError(t, err)
	require.Equal(t, DefaultSession, up.explained.GetSessionKey())
	require.Equal(t, int64(64), up.explained.GetPolicy().GetPidsLimit(), "explains the gateway's policy")
	require.Equal(t, sandboxv1.Profile_PROFILE_HARDENED, up.explained.GetProfile(), "mode all: hardened")

	pol.Mode = sandboxv1.Mode_MODE_NON_MAIN
	ex, err := c.Explain(ctx, &sandboxv1.ExplainRequest{})
	require.NoError(t, err)
	require.Equal(t, sandboxv1.Profile_PROFILE_MAIN, up.explained.GetProfile(), "the owner's main session")
	require.True(t, up.explained.GetOwnerWorkspace())
	require.Contains(t, ex.GetItems()[0].GetWhy(), "owner's main session", "the gateway's reason")
	_, err = c.Explain(ctx, &sandboxv1.ExplainRequest{SessionKey: "agent:main:telegram:dm:42"})
	require.NoError(t, err)
	require.Equal(t, sandboxv1.Profile_PROFILE_HARDENED, up.explained.GetProfile())
	require.False(t, up.explained.GetOwnerWorkspace())

	_, err = c.List(ctx, &sandboxv1.ListRequest{})
	require.Equal(t, codes.Unavailable, status.Code(err), "upstream errors keep their code")

	_, err = c.Exec(ctx, &sandboxv1.ExecRequest{Shell: "id"})
	require.Equal(t, codes.PermissionDenied, status.Code(err))
	_, err = c.Ensure(ctx, &sandboxv1.EnsureRequest{})
	require.Equal(t, codes.PermissionDenied, status.Code(err))
}
