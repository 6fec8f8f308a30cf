package agent

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	sandboxv1 "github.com/moltbot/moltbot-secure/proto/sandbox/v1"
	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// TestChooseProfile is the profile table: only the owner's main session
// gets the main profile with the owner's workspace; mode off gives others
// the main profile's network without it; mode all hardens everyone.
func TestChooseProfile(t *testing.T) {
	const (
		main   = sandboxv1.Profile_PROFILE_MAIN
		hard   = sandboxv1.Profile_PROFILE_HARDENED
		nonM   = sandboxv1.Mode_MODE_NON_MAIN
		unset  = sandboxv1.Mode_MODE_UNSPECIFIED
		off    = sandboxv1.Mode_MODE_OFF
		all    = sandboxv1.Mode_MODE_ALL
		mk     = "agent:main:main"
		peer   = "agent:main:telegram:dm:42"
		group  = "agent:main:local:group:g1"
		forged = "agent:main:main:x"
	)
	tests := []struct {
		name    string
		mode    sandboxv1.Mode
		key     string
		owner   bool
		profile sandboxv1.Profile
		ws      bool
	}{
		{"non-main owner main", nonM, mk, true, main, true},
		{"unset owner main", unset, mk, true, main, true},
		{"non-main owner per-peer scope", nonM, peer, true, hard, false},
		{"non-main approved sender", nonM, peer, false, hard, false},
		{"non-main main key without owner", nonM, mk, false, hard, false},
		{"non-main group", nonM, group, false, hard, false},
		{"non-main forged key", nonM, forged, true, hard, false},
		{"unset group", unset, group, false, hard, false},
		{"off owner main", off, mk, true, main, true},
		{"off approved sender", off, peer, false, main, false},
		{"off group", off, group, false, main, false},
		{"off main key without owner", off, mk, false, main, false},
		{"all owner main", all, mk, true, hard, false},
		{"all group", all, group, false, hard, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ChooseProfile(tt.mode, tt.key, tt.owner)
			require.Equal(t, tt.profile, c.Profile)
			require.Equal(t, tt.ws, c.OwnerWorkspace)
			require.NotEmpty(t, c.Why)
		})
	}
}

func parse(t *testing.T, src string) *config.Config {
	t.Helper()
	c, err := config.Parse("moltbot.json", []byte(src))
	require.NoError(t, err)
	return c
}

func TestPolicyFromConfig(t *testing.T) {
	p, err := PolicyFromConfig(parse(t, `{}`))
	require.NoError(t, err)
	require.Equal(t, sandboxv1.Mode_MODE_UNSPECIFIED, p.GetMode(), "unset fields are left to sandboxd's defaults")
	require.Empty(t, p.GetImage())

	p, err = PolicyFromConfig(parse(t, `{agents: {defaults: {workspace: "/srv/ws", sandbox: {mode: "all", scope: "agent", workspaceAccess: "ro", workspaceQuota: "2g",
		docker: {image: "img:1", memory: "256m", cpus: 0.5, pidsLimit: 64, env: {A: "b"}, binds: ["/srv/data:/data"], user: "0:0"}}}}}`))
	require.NoError(t, err)
	require.Equal(t, sandboxv1.Mode_MODE_ALL, p.GetMode())
	require.Equal(t, sandboxv1.Scope_SCOPE_AGENT, p.GetScope())
	require.Equal(t, sandboxv1.WorkspaceAccess_WORKSPACE_ACCESS_RO, p.GetWorkspaceAccess())
	require.Empty(t, p.GetWorkspaceDir(), "workspaces are sandboxd's volumes, never a host path")
	require.Equal(t, int64(2<<30), p.GetWorkspaceQuotaBytes())
	require.Equal(t, "img:1", p.GetImage())
	require.Equal(t, int64(256<<20), p.GetMemoryBytes())
	require.Equal(t, 0.5, p.GetCpus())
	require.Equal(t, int64(64), p.GetPidsLimit())
	require.Equal(t, map[string]string{"A": "b"}, p.GetEnv())
	require.Equal(t, []string{"/srv/data:/data"}, p.GetBinds())

	for _, bad := range []struct{ src, want string }{
		{`{agents: {defaults: {sandbox: {docker: {network: "host"}}}}}`, "agents.defaults.sandbox.docker.network"},
		{`{agents: {defaults: {sandbox: {docker: {binds: ["/var/run/docker.sock:/s"]}}}}}`, "Docker socket"},
		{`{agents: {defaults: {sandbox: {docker: {memory: "lots"}}}}}`, "docker.memory"},
		{`{agents: {defaults: {sandbox: {workspaceQuota: "1k"}}}}`, "workspaceQuota"},
	} {
		_, err := PolicyFromConfig(parse(t, bad.src))
		require.ErrorIs(t, err, errs.ErrFailedPrecondition, bad.src)
		require.ErrorContains(t, err, bad.want)
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"512m": 512 << 20, "1g": 1 << 30, "1GiB": 1 << 30, "64MB": 64 << 20, "1048576": 1 << 20, "1.5k": 1536} {
		got, err := ParseBytes(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "m", "-1m", "0", "lots", "1t"} {
		_, err := ParseBytes(in)
		require.Error(t, err, in)
	}
}

func TestFilePolicySourceFollowsTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "moltbot.json")
	src := FilePolicySource(path)
	p, err := src()
	require.NoError(t, err, "a missing file means the defaults")
	require.Equal(t, sandboxv1.Mode_MODE_UNSPECIFIED, p.GetMode())

	require.NoError(t, os.WriteFile(path, []byte(`{agents: {defaults: {sandbox: {mode: "off"}}}}`), 0o600))
	p, err = src()
	require.NoError(t, err)
	require.Equal(t, sandboxv1.Mode_MODE_OFF, p.GetMode())

	require.NoError(t, os.WriteFile(path, []byte(`{agents: {defaults: {sandbox: {docker: {pidsLimit: 64}}}}}`), 0o600))
	require.NoError(t, os.Chtimes(path, time.Now(), time.Now().Add(time.Second)))
	p, err = src()
	require.NoError(t, err)
	require.Equal(t, int64(64), p.GetPidsLimit())
	require.Equal(t, sandboxv1.Mode_MODE_UNSPECIFIED, p.GetMode())

	require.NoError(t, os.WriteFile(path, []byte(`{not json`), 0o600))
	require.NoError(t, os.Chtimes(path, time.Now(), time.Now().Add(2*time.Second)))
	_, err = src()
	require.ErrorIs(t, err, errs.ErrFailedPrecondition, "an unreadable policy refuses commands")
}

// fakeSandboxd records Exec requests; sandboxd is an outside service here
// (its own tests run it on the real engine).
type fakeSandboxd struct {
	sandboxv1.UnimplementedSandboxServer
	got  []*sandboxv1.ExecRequest
	fail error
}

func (f *fakeSandboxd) Exec(_ context.Context, r *sandboxv1.ExecRequest) (*sandboxv1.ExecResponse, error) {
	f.got = append(f.got, r)
	if f.fail != nil {
		return nil, errs.ToStatus(f.fail)
	}
	return &sandboxv1.ExecResponse{ExitCode: 137, Stdout: []byte("10001\n\xff"), KillCause: sandboxv1.KillCause_KILL_CAUSE_OOM,
		ContainerId: "0123456789abcdef"}, nil
}

func dialFake(t *testing.T, f *fakeSandboxd) sandboxv1.SandboxClient {
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	sandboxv1.RegisterSandboxServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	cc, err := grpc.NewClient("passthrough:///bufnet", grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
		return lis.DialContext(ctx)
	}), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	return sandboxv1.NewSandboxClient(cc)
}

func TestEchoAndRouter(t *testing.T) {
	fake := &fakeSandboxd{}
	mode := sandboxv1.Mode_MODE_NON_MAIN
	pol := func() (*sandboxv1.Policy, error) { return &sandboxv1.Policy{Mode: mode, PidsLimit: 64}, nil }
	r := &Router{Sandbox: dialFake(t, fake), Policy: pol}
	a := &Echo{Executor: r}
	ctx := context.Background()
	group := Turn{SessionKey: "agent:main:local:group:g1", AgentID: "main", Text: "/exec id -u"}
	mainT := Turn{SessionKey: "agent:main:main", AgentID: "main", Main: true, Owner: true, Text: "/exec echo hi"}

	reply, err := a.Reply(ctx, Turn{SessionKey: "agent:main:main", Text: "hello"})
	require.NoError(t, err)
	require.Equal(t, "echo: hello", reply)
	reply, _ = a.Reply(ctx, Turn{SessionKey: "agent:main:main", Text: "/executive"})
	require.Equal(t, "echo: /executive", reply, "only the exact /exec command")

	reply, err = a.Reply(ctx, group)
	require.NoError(t, err)
	require.Equal(t, "$ id -u\n10001\n\uFFFD\n[exit 137, killed: oom, sandbox 0123456789ab, profile hardened]", reply)
	require.Len(t, fake.got, 1)
	require.Equal(t, "id -u", fake.got[0].GetShell())
	require.Equal(t, group.SessionKey, fake.got[0].GetSessionKey())
	require.Equal(t, int64(64), fake.got[0].GetPolicy().GetPidsLimit(), "the policy travels with each command")
	require.Equal(t, sandboxv1.Profile_PROFILE_HARDENED, fake.got[0].GetProfile())
	require.False(t, fake.got[0].GetOwnerWorkspace())

	reply, err = a.Reply(ctx, mainT)
	require.NoError(t, err)
	require.Contains(t, reply, ", profile main]")
	require.Len(t, fake.got, 2, "the main session goes to sandboxd too: the gateway runs nothing")
	require.Equal(t, sandboxv1.Profile_PROFILE_MAIN, fake.got[1].GetProfile())
	require.True(t, fake.got[1].GetOwnerWorkspace())

	mode = sandboxv1.Mode_MODE_OFF
	reply, _ = a.Reply(ctx, group)
	require.Contains(t, reply, ", profile main]")
	require.False(t, fake.got[2].GetOwnerWorkspace(), "mode off never gives a group the owner's workspace")
	mode = sandboxv1.Mode_MODE_ALL
	_, _ = a.Reply(ctx, mainT)
	require.Len(t, fake.got, 4)
	require.Equal(t, sandboxv1.Profile_PROFILE_HARDENED, fake.got[3].GetProfile(), "mode all hardens the main session too")

	mode = sandboxv1.Mode_MODE_NON_MAIN
	fake.fail = errors.Join(errors.New("Docker is not reachable (start the Docker engine)"), errs.ErrUnavailable)
	reply, err = a.Reply(ctx, group)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(reply, "exec refused: "), reply)
	require.Contains(t, reply, "start the Docker engine")

	a.AllowExec = func(t Turn) bool { return t.Main }
	reply, _ = a.Reply(ctx, group)
	require.Equal(t, "exec: not allowed for this sender", reply)
}
