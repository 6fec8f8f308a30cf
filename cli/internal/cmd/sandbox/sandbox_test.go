package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	sandboxv1 "github.com/moltbot/moltbot-secure/proto/sandbox/v1"
)

// root wraps cmd the way the real root does: persistent --json, usage errors typed.
func root(f *cmdutil.Factory, cmd *cobra.Command) *cobra.Command {
	r := &cobra.Command{Use: "moltbot", SilenceUsage: true, SilenceErrors: true}
	r.PersistentFlags().BoolVar(&f.JSON, "json", false, "")
	r.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &cmdutil.UsageError{Err: err} })
	r.AddCommand(cmd)
	return r
}

func exec(t *testing.T, f *cmdutil.Factory, cmd *cobra.Command, args ...string) error {
	t.Helper()
	r := root(f, cmd)
	r.SetArgs(args)
	r.SetOut(&bytes.Buffer{})
	r.SetErr(&bytes.Buffer{})
	return r.Execute()
}

func TestFlags(t *testing.T) {
	f := &cmdutil.Factory{}
	tests := []struct {
		name  string
		args  []string
		usage bool
		check func(t *testing.T, got any)
	}{
		{"recreate all", []string{"recreate", "--all"}, false, func(t *testing.T, got any) {
			require.True(t, got.(*RecreateOptions).All)
		}},
		{"recreate session", []string{"recreate", "--session", "agent:main:local:group:g"}, false, func(t *testing.T, got any) {
			require.Equal(t, "agent:main:local:group:g", got.(*RecreateOptions).Session)
		}},
		{"recreate reset", []string{"recreate", "--session", "s", "--reset-workspace"}, false, func(t *testing.T, got any) {
			require.True(t, got.(*RecreateOptions).ResetWorkspace)
		}},
		{"recreate neither", []string{"recreate"}, true, nil},
		{"recreate reset alone", []string{"recreate", "--reset-workspace"}, true, nil},
		{"recreate both", []string{"recreate", "--all", "--session", "x"}, true, nil},
		{"explain default", []string{"explain"}, false, func(t *testing.T, got any) {
			require.Empty(t, got.(*ExplainOptions).Session)
		}},
		{"explain session", []string{"explain", "--session", "agent:main:main"}, false, func(t *testing.T, got any) {
			require.Equal(t, "agent:main:main", got.(*ExplainOptions).Session)
		}},
		{"prune", []string{"prune", "--idle", "1h", "--max-age", "72h"}, false, func(t *testing.T, got any) {
			require.Equal(t, time.Hour, got.(*PruneOptions).Idle)
			require.Equal(t, 72*time.Hour, got.(*PruneOptions).MaxAge)
		}},
		{"prune workspaces", []string{"prune", "--workspaces", "--idle", "2h"}, false, func(t *testing.T, got any) {
			require.True(t, got.(*PruneOptions).Workspaces)
			require.Equal(t, 2*time.Hour, got.(*PruneOptions).Idle)
		}},
		{"prune bad duration", []string{"prune", "--idle", "soon"}, true, nil},
		{"prune negative", []string{"prune", "--idle", "-1h"}, true, nil},
		{"list json", []string{"list", "--json"}, false, func(t *testing.T, got any) { require.True(t, f.JSON) }},
		{"list extra arg", []string{"list", "x"}, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got any
			cmd := &cobra.Command{Use: "sandbox"}
			cmd.AddCommand(
				newCmdList(f, func(o *ListOptions) error { got = o; return nil }),
				newCmdExplain(f, func(o *ExplainOptions) error { got = o; return nil }),
				newCmdRecreate(f, func(o *RecreateOptions) error { got = o; return nil }),
				newCmdPrune(f, func(o *PruneOptions) error { got = o; return nil }),
			)
			err := exec(t, f, cmd, append([]string{"sandbox"}, tt.args...)...)
			if tt.usage {
				var u *cmdutil.UsageError
				if !errors.As(err, &u) {
					// cobra's arg validators return plain errors; still a refusal.
					require.Error(t, err)
				}
				require.Nil(t, got, "runF must not run on a usage error")
				return
			}
			require.NoError(t, err)
			tt.check(t, got)
		})
	}
}

// fakeGateway answers the proxy's methods with fixed data.
type fakeGateway struct {
	sandboxv1.UnimplementedSandboxServer
	recreate *sandboxv1.RecreateRequest
	prune    *sandboxv1.PruneRequest
}

func (g *fakeGateway) Prune(_ context.Context, r *sandboxv1.PruneRequest) (*sandboxv1.PruneResponse, error) {
	g.prune = r
	return &sandboxv1.PruneResponse{WorkspacesRemoved: []string{"moltbot-sbx-ws-1"}}, nil
}

func (g *fakeGateway) List(context.Context, *sandboxv1.ListRequest) (*sandboxv1.ListResponse, error) {
	now := time.Now()
	return &sandboxv1.ListResponse{PoolSize: 1, Containers: []*sandboxv1.ContainerInfo{
		{Id: "0123456789abcdef", SessionKey: "agent:main:local:group:g1", State: "running", ConfigHash: "h1", Image: "img",
			CreatedAt: timestamppb.New(now.Add(-2 * time.Hour)), LastUsedAt: timestamppb.New(now.Add(-time.Minute)), Agent: true},
	}, Workspaces: []*sandboxv1.WorkspaceInfo{
		{Volume: "moltbot-sbx-ws-1", Kind: "workspace", Key: "session:g1", SessionKey: "agent:main:local:group:g1", Measured: true,
			UsageBytes: 600 << 20, QuotaBytes: 512 << 20, LastUsedAt: timestamppb.New(now.Add(-time.Minute)), InUse: true},
		{Volume: "moltbot-sbx-agent-1", Kind: "agent-workspace", Key: "agent:main", AgentId: "main", Measured: true,
			UsageBytes: 1 << 20, QuotaBytes: 512 << 20},
	}}, nil
}

func (g *fakeGateway) Recreate(_ context.Context, r *sandboxv1.RecreateRequest) (*sandboxv1.RecreateResponse, error) {
	g.recreate = r
	return &sandboxv1.RecreateResponse{Removed: 2}, nil
}

func (g *fakeGateway) Info(context.Context, *sandboxv1.InfoRequest) (*sandboxv1.InfoResponse, error) {
	return &sandboxv1.InfoResponse{DockerError: "Docker is not reachable (start the Docker engine)", Image: "img"}, nil
}

func client(t *testing.T, s sandboxv1.SandboxServer) ClientFunc {
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	sandboxv1.RegisterSandboxServer(srv, s)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	cc, err := grpc.NewClient("passthrough:///bufnet", grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
		return lis.DialContext(ctx)
	}), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	return func() (sandboxv1.SandboxClient, error) { return sandboxv1.NewSandboxClient(cc), nil }
}

func TestRun(t *testing.T) {
	g := &fakeGateway{}
	c := client(t, g)
	var out, errb bytes.Buffer
	f := &cmdutil.Factory{Out: &out, Err: &errb}

	require.NoError(t, listRun(nil, f, &ListOptions{Client: c, Now: time.Now}))
	require.Contains(t, out.String(), "0123456789ab  agent:main:local:group:g1  hardened  running  2h   1m ")
	require.Contains(t, errb.String(), "1 container(s), 1 warm in the pool")
	require.Contains(t, out.String(), "moltbot-sbx-ws-1     workspace        agent:main:local:group:g1  600.0MiB (over quota)  512.0MiB  1m    true\n")
	require.Contains(t, out.String(), "moltbot-sbx-agent-1  agent-workspace  agent main                 1.0MiB                 512.0MiB  -     false\n")
	require.Contains(t, errb.String(), "moltbot sandbox prune --workspaces")

	out.Reset()
	f.JSON = true
	require.NoError(t, listRun(nil, f, &ListOptions{Client: c, Now: time.Now}))
	// protojson varies its whitespace on purpose: compare parsed JSON.
	var listed struct {
		Containers []struct {
			SessionKey string `json:"session_key"`
		} `json:"containers"`
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &listed))
	require.Len(t, listed.Containers, 1)
	require.Equal(t, "agent:main:local:group:g1", listed.Containers[0].SessionKey)
	f.JSON = false

	out.Reset()
	require.NoError(t, recreateRun(nil, f, &RecreateOptions{Client: c, Session: "s1"}))
	require.Equal(t, "s1", g.recreate.GetSessionKey())
	require.Contains(t, out.String(), "removed 2 container(s)")

	out.Reset()
	require.NoError(t, recreateRun(nil, f, &RecreateOptions{Client: c, Session: "s1", ResetWorkspace: true}))
	require.True(t, g.recreate.GetResetWorkspace())

	out.Reset()
	require.NoError(t, pruneRun(nil, f, &PruneOptions{Client: c, Workspaces: true, Idle: time.Hour}))
	require.True(t, g.prune.GetWorkspaces())
	require.Equal(t, time.Hour, g.prune.GetIdle().AsDuration())
	require.Contains(t, out.String(), "deleted workspace moltbot-sbx-ws-1")

	out.Reset()
	err := infoRun(nil, f, &InfoOptions{Client: c})
	var d *cmdutil.DegradedError
	require.ErrorAs(t, err, &d, "Docker missing exits 3")
	require.Contains(t, out.String(), "start the Docker engine")
}

func TestVerdict(t *testing.T) {
	for _, tc := range []struct {
		name string
		resp *sandboxv1.ExplainResponse
		want string
	}{
		{"main", &sandboxv1.ExplainResponse{Sandboxed: true, Profile: sandboxv1.Profile_PROFILE_MAIN,
			Items: []*sandboxv1.ExplainItem{{Name: "profile", Why: "the owner's main session"}}}, "sandboxed, profile main: the owner's main session"},
		{"hardened no why", &sandboxv1.ExplainResponse{Sandboxed: true, Profile: sandboxv1.Profile_PROFILE_HARDENED}, "sandboxed, profile hardened"},
		{"old sandboxd", &sandboxv1.ExplainResponse{}, "profile hardened (sandboxd predates profiles: upgrade it)"},
	} {
		t.Run(tc.name, func(t *testing.T) { require.Equal(t, tc.want, verdict(tc.resp)) })
	}
}
