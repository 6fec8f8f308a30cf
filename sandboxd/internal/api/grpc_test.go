package api

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/durationpb"

	sandboxv1 "github.com/moltbot/moltbot-secure/proto/sandbox/v1"
	"github.com/moltbot/moltbot-secure/sandboxd/internal/backend/fake"
	"github.com/moltbot/moltbot-secure/sandboxd/internal/sandbox"
)

// TestWorkspacesOverGRPC: the workspace fields of the API on the
// in-memory engine (the real engine: service_test.go, integration tag).
func TestWorkspacesOverGRPC(t *testing.T) {
	be := fake.New("img:1")
	svc, err := sandbox.New(sandbox.Config{Backend: be, PoolSize: -1, PruneEvery: -1, WatchEvery: -1, NamePrefix: "api",
		Defaults: sandbox.Policy{Image: "img:1"}})
	require.NoError(t, err)
	svc.Start(context.Background())
	t.Cleanup(svc.Close)
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	RegisterService(srv, New(Config{Sandbox: svc}))
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet", grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
		return lis.DialContext(ctx)
	}), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	c := sandboxv1.NewSandboxClient(conn)
	ctx := context.Background()
	const key = "agent:a1:telegram:group:-1"
	quota := &sandboxv1.Policy{WorkspaceQuotaBytes: 2 << 20}

	r, err := c.Exec(ctx, &sandboxv1.ExecRequest{SessionKey: key, Shell: "true", Policy: quota})
	require.NoError(t, err)
	list, err := c.List(ctx, &sandboxv1.ListRequest{})
	require.NoError(t, err)
	require.Len(t, list.GetContainers(), 1)
	vol := list.GetContainers()[0].GetWorkspaceVolume()
	require.NotEmpty(t, vol)
	require.Len(t, list.GetWorkspaces(), 1)
	w := list.GetWorkspaces()[0]
	require.Equal(t, vol, w.GetVolume())
	require.Equal(t, key, w.GetSessionKey())
	require.Equal(t, int64(2<<20), w.GetQuotaBytes())
	require.True(t, w.GetInUse())
	spec, _ := be.SpecOf(r.GetContainerId())
	require.Equal(t, int64(2<<20), spec.Fsize, "the request's quota is RLIMIT_FSIZE")

	be.SetUsage(vol, 3<<20)
	_, err = c.Exec(ctx, &sandboxv1.ExecRequest{SessionKey: key, Shell: "true", Policy: quota})
	require.NoError(t, err, "the command that passed the quota ran")
	_, err = c.Exec(ctx, &sandboxv1.ExecRequest{SessionKey: key, Shell: "true", Policy: quota})
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
	require.Contains(t, status.Convert(err).Message(), "moltbot sandbox prune --workspaces")

	ex, err := c.Explain(ctx, &sandboxv1.ExplainRequest{SessionKey: key, AgentId: "a1", Policy: &sandboxv1.Policy{WorkspaceAccess: sandboxv1.WorkspaceAccess_WORKSPACE_ACCESS_RO}})
	require.NoError(t, err)
	names := map[string]string{}
	for _, it := range ex.GetItems() {
		names[it.GetName()] = it.GetValue()
	}
	require.Equal(t, "volume "+vol+" rw", names["mount /workspace"])
	require.Contains(t, names["mount /agent"], " ro")

	// prune without --workspaces keeps it; with, an idle one goes.
	pr, err := c.Prune(ctx, &sandboxv1.PruneRequest{Idle: durationpb.New(time.Hour)})
	require.NoError(t, err)
	require.Empty(t, pr.GetWorkspacesRemoved())
	rc, err := c.Recreate(ctx, &sandboxv1.RecreateRequest{SessionKey: key, ResetWorkspace: true})
	require.NoError(t, err)
	require.Equal(t, []string{vol}, rc.GetWorkspacesRemoved())
	require.False(t, be.HasVolume(vol))
	_, err = c.Exec(ctx, &sandboxv1.ExecRequest{SessionKey: key, Shell: "true", Policy: quota})
	require.NoError(t, err, "a reset workspace starts clean")
	pr, err = c.Prune(ctx, &sandboxv1.PruneRequest{Idle: durationpb.New(time.Nanosecond), Workspaces: true})
	require.NoError(t, err)
	require.Len(t, pr.GetRemoved(), 1)
	require.Len(t, pr.GetWorkspacesRemoved(), 1)
}
