//go:build integration

package api

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
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
	"github.com/moltbot/moltbot-secure/sandboxd/internal/backend"
	"github.com/moltbot/moltbot-secure/sandboxd/internal/sandbox"
)

// TestOverGRPC runs the real service on the real engine through an
// in-memory gRPC connection.
func TestOverGRPC(t *testing.T) {
	if out, err := exec.Command("docker", "version").CombinedOutput(); err != nil {
		t.Skipf("Docker is not reachable (%v: %s); start the engine to run this test", err, strings.TrimSpace(string(out)))
	}
	_, file, _, _ := runtime.Caller(0)
	build := exec.Command("bash", filepath.Join(filepath.Dir(file), "..", "..", "..", "deploy", "sandbox", "build-testimage.sh"))
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)

	inst := fmt.Sprintf("api-test-%d", os.Getpid())
	be, err := backend.NewDocker(backend.DockerConfig{Instance: inst})
	require.NoError(t, err)
	svc, err := sandbox.New(sandbox.Config{Backend: be, PoolSize: -1, PruneEvery: -1, NamePrefix: "mbtest-" + inst,
		Defaults: sandbox.Policy{Image: "moltbot-sandbox-test:latest", MemoryBytes: 128 << 20, TmpfsBytes: 16 << 20}})
	require.NoError(t, err)
	svc.Start(context.Background())
	t.Cleanup(func() {
		svc.Close()
		_, _ = svc.Recreate(context.Background(), "", true)
		vs, _ := be.ListVolumes(context.Background())
		for _, v := range vs {
			if err := be.RemoveVolume(context.Background(), v.Name); err != nil {
				t.Errorf("remove test volume %s: %v", v.Name, err)
			}
		}
		_ = be.Close()
	})

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
	tests := []struct {
		name string
		req  *sandboxv1.ExecRequest
		code codes.Code
	}{
		{"ok", &sandboxv1.ExecRequest{SessionKey: key, Shell: "printf 'a\\377'; exit 4"}, codes.OK},
		{"argv and shell", &sandboxv1.ExecRequest{SessionKey: key, Shell: "x", Argv: []string{"y"}}, codes.InvalidArgument},
		{"no command", &sandboxv1.ExecRequest{SessionKey: key}, codes.InvalidArgument},
		{"negative timeout", &sandboxv1.ExecRequest{SessionKey: key, Shell: "true", Timeout: durationpb.New(-time.Second)}, codes.InvalidArgument},
		{"network host", &sandboxv1.ExecRequest{SessionKey: key, Shell: "true", Policy: &sandboxv1.Policy{Network: "host"}}, codes.InvalidArgument},
		{"docker socket bind", &sandboxv1.ExecRequest{SessionKey: key, Shell: "true", Policy: &sandboxv1.Policy{Binds: []string{"/var/run/docker.sock:/s"}}}, codes.InvalidArgument},
		{"missing image", &sandboxv1.ExecRequest{SessionKey: key, Shell: "true", Policy: &sandboxv1.Policy{Image: "moltbot-no-such:latest"}}, codes.FailedPrecondition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := c.Exec(ctx, tt.req)
			require.Equal(t, tt.code, status.Code(err), "%v", err)
			if tt.code == codes.OK {
				require.Equal(t, int32(4), resp.GetExitCode())
				require.Equal(t, []byte("a\xff"), resp.GetStdout(), "output is bytes, not text")
				require.Equal(t, sandboxv1.KillCause_KILL_CAUSE_NONE, resp.GetKillCause())
				require.Equal(t, "agent", resp.GetPath())
			}
		})
	}
	timed, err := c.Exec(ctx, &sandboxv1.ExecRequest{SessionKey: key, Argv: []string{"sleep", "5"}, Timeout: durationpb.New(200 * time.Millisecond)})
	require.NoError(t, err)
	require.Equal(t, sandboxv1.KillCause_KILL_CAUSE_TIMEOUT, timed.GetKillCause())

	list, err := c.List(ctx, &sandboxv1.ListRequest{})
	require.NoError(t, err)
	require.Len(t, list.GetContainers(), 1)
	require.Equal(t, key, list.GetContainers()[0].GetLabels()["moltbot.sandbox.session"])

	ex, err := c.Explain(ctx, &sandboxv1.ExplainRequest{SessionKey: "agent:a1:main", AgentId: "a1",
		Profile: sandboxv1.Profile_PROFILE_MAIN, OwnerWorkspace: true})
	require.NoError(t, err)
	require.True(t, ex.GetMainSession())
	require.True(t, ex.GetSandboxed(), "no session runs outside a sandbox")
	require.Equal(t, sandboxv1.Profile_PROFILE_MAIN, ex.GetProfile())
	// An unspecified profile (an older gateway) is hardened: fail closed.
	ex, err = c.Explain(ctx, &sandboxv1.ExplainRequest{SessionKey: "agent:a1:main", AgentId: "a1"})
	require.NoError(t, err)
	require.Equal(t, sandboxv1.Profile_PROFILE_HARDENED, ex.GetProfile())
	_, err = c.Explain(ctx, &sandboxv1.ExplainRequest{SessionKey: "agent:a1:main", OwnerWorkspace: true})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "the owner's workspace needs the main profile")

	info, err := c.Info(ctx, &sandboxv1.InfoRequest{})
	require.NoError(t, err)
	require.True(t, info.GetDockerReachable())
	require.True(t, info.GetImagePresent())

	pr, err := c.Prune(ctx, &sandboxv1.PruneRequest{Idle: durationpb.New(time.Nanosecond)})
	require.NoError(t, err)
	require.Len(t, pr.GetRemoved(), 1)
	rc, err := c.Recreate(ctx, &sandboxv1.RecreateRequest{})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", rc)
}
