//go:build integration

package sandbox

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/sandboxd/internal/backend"
	"github.com/moltbot/moltbot-secure/services/errs"
)

const groupKey = "agent:a1:telegram:group:-100123"

func TestExecLabelsShowSession(t *testing.T) {
	svc, _ := newTestService(t, nil)
	ctx := context.Background()
	r, err := svc.Exec(ctx, ExecRequest{SessionKey: groupKey, AgentID: "a1", Shell: "echo hi; id -u"})
	require.NoError(t, err)
	require.Equal(t, "hi\n10001\n", string(r.Stdout))
	require.Equal(t, backend.PathAgent, r.Path)
	labels := docker(t, "inspect", "-f", `{{index .Config.Labels "moltbot.sandbox.session"}} {{index .Config.Labels "moltbot.sandbox"}} {{index .Config.Labels "moltbot.sandbox.scope"}}`, r.ContainerID)
	require.Equal(t, groupKey+" 1 session", labels)

	// Same session: same container, no new create.
	r2, err := svc.Exec(ctx, ExecRequest{SessionKey: groupKey, AgentID: "a1", Argv: []string{"true"}})
	require.NoError(t, err)
	require.Equal(t, r.ContainerID, r2.ContainerID)

	list, err := svc.List(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, groupKey, list[0].SessionKey)
}

func TestScopes(t *testing.T) {
	svc, _ := newTestService(t, nil)
	ctx := context.Background()
	ensure := func(key string, sc Scope) string {
		p := testPolicy()
		p.Scope = sc
		r, err := svc.Ensure(ctx, EnsureRequest{SessionKey: key, AgentID: "a1", Policy: &p})
		require.NoError(t, err)
		return r.Container.ID
	}
	require.NotEqual(t, ensure("agent:a1:x:1", ScopeSession), ensure("agent:a1:x:2", ScopeSession))
	require.Equal(t, ensure("agent:a1:x:1", ScopeAgent), ensure("agent:a1:x:2", ScopeAgent))
	require.Equal(t, ensure("agent:a1:x:1", ScopeShared), ensure("agent:b2:x:9", ScopeShared))
}

func TestPolicyChangeRecreates(t *testing.T) {
	svc, _ := newTestService(t, nil)
	ctx := context.Background()
	first, err := svc.Ensure(ctx, EnsureRequest{SessionKey: groupKey})
	require.NoError(t, err)
	require.True(t, first.Created)
	again, err := svc.Ensure(ctx, EnsureRequest{SessionKey: groupKey})
	require.NoError(t, err)
	require.False(t, again.Created)
	require.Equal(t, first.Container.ID, again.Container.ID)

	p := testPolicy()
	p.MemoryBytes = 96 << 20
	changed, err := svc.Ensure(ctx, EnsureRequest{SessionKey: groupKey, Policy: &p})
	require.NoError(t, err)
	require.True(t, changed.Created)
	require.NotEqual(t, first.Container.ID, changed.Container.ID)
	require.NotEqual(t, first.Container.ConfigHash, changed.Container.ConfigHash)
	require.Equal(t, changed.Container.ConfigHash, docker(t, "inspect", "-f", `{{index .Config.Labels "moltbot.sandbox.config-hash"}}`, changed.Container.ID))
	require.Equal(t, "100663296", docker(t, "inspect", "-f", `{{.HostConfig.Memory}}`, changed.Container.ID))
	require.Error(t, exec.Command("docker", "inspect", first.Container.ID).Run(), "old container must be removed")
}

func TestDeadContainerRecreated(t *testing.T) {
	svc, _ := newTestService(t, nil)
	ctx := context.Background()
	r, err := svc.Exec(ctx, ExecRequest{SessionKey: groupKey, Argv: []string{"true"}})
	require.NoError(t, err)
	docker(t, "kill", r.ContainerID)
	// Exec notices on its own (the command was never sent) and retries once.
	r2, err := svc.Exec(ctx, ExecRequest{SessionKey: groupKey, Shell: "echo back"})
	require.NoError(t, err)
	require.Equal(t, "back\n", string(r2.Stdout))
	require.NotEqual(t, r.ContainerID, r2.ContainerID)
	// And Ensure verifies liveness too.
	docker(t, "kill", r2.ContainerID)
	e, err := svc.Ensure(ctx, EnsureRequest{SessionKey: groupKey})
	require.NoError(t, err)
	require.True(t, e.Created)
	require.NotEqual(t, r2.ContainerID, e.Container.ID)
}

func TestForkBombRecreatesContainer(t *testing.T) {
	svc, _ := newTestService(t, nil)
	ctx := context.Background()
	r, err := svc.Exec(ctx, ExecRequest{SessionKey: groupKey, Shell: "f(){ f|f& }; f; sleep 1", Timeout: 5 * time.Second})
	require.NoError(t, err)
	require.Equal(t, backend.CausePidsLimit, r.Cause)
	next, err := svc.Exec(ctx, ExecRequest{SessionKey: groupKey, Shell: "echo fine"})
	require.NoError(t, err)
	require.Equal(t, "fine\n", string(next.Stdout))
	require.NotEqual(t, r.ContainerID, next.ContainerID, "the wedged container must be replaced")
}

func TestExecLimits(t *testing.T) {
	svc, _ := newTestService(t, nil)
	ctx := context.Background()
	start := time.Now()
	r, err := svc.Exec(ctx, ExecRequest{SessionKey: groupKey, Shell: "setsid sleep 300 & sleep 300", Timeout: 300 * time.Millisecond})
	require.NoError(t, err)
	require.Equal(t, backend.CauseTimeout, r.Cause)
	require.Less(t, time.Since(start), 3*time.Second)
	ps, err := svc.Exec(ctx, ExecRequest{SessionKey: groupKey, Argv: []string{"ps", "-o", "comm"}})
	require.NoError(t, err)
	require.NotContains(t, string(ps.Stdout), "sleep")
	require.Equal(t, r.ContainerID, ps.ContainerID, "a timeout kills the command, not the container")

	big, err := svc.Exec(ctx, ExecRequest{SessionKey: groupKey, Shell: "head -c 100000000 /dev/zero", OutputCap: 1 << 20})
	require.NoError(t, err)
	require.True(t, big.Truncated)
	require.Len(t, big.Stdout, 1<<20)

	p := testPolicy()
	p.MemoryBytes = 64 << 20
	p.TmpfsBytes = 8 << 20
	oom, err := svc.Exec(ctx, ExecRequest{SessionKey: groupKey, Shell: `awk 'BEGIN{s="x"; while(1) s=s s}'`, Policy: &p})
	require.NoError(t, err)
	require.Equal(t, backend.CauseOOM, oom.Cause)
	require.Equal(t, 137, oom.ExitCode)
	after, err := svc.Exec(ctx, ExecRequest{SessionKey: groupKey, Shell: "echo alive", Policy: &p})
	require.NoError(t, err)
	require.Equal(t, oom.ContainerID, after.ContainerID, "OOM kills the command inside only")
}

func TestPruneOnlyIdleAndLabelled(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	svc, _ := newTestService(t, func(c *Config) { c.Now = clock.Now })
	ctx := context.Background()
	idle, err := svc.Ensure(ctx, EnsureRequest{SessionKey: "agent:a1:x:idle"})
	require.NoError(t, err)
	busy, err := svc.Ensure(ctx, EnsureRequest{SessionKey: "agent:a1:x:busy"})
	require.NoError(t, err)
	name := "mbtest-unlabelled-" + time.Now().Format("150405.000000")
	other := docker(t, "create", "--name", name, "--label", "moltbot.sandbox.session=agent:a1:x:idle", testImage)
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", other).Run() })

	clock.Add(25 * time.Hour)
	_, err = svc.Exec(ctx, ExecRequest{SessionKey: "agent:a1:x:busy", Argv: []string{"true"}})
	require.NoError(t, err)
	removed, err := svc.Prune(ctx, 0, 0)
	require.NoError(t, err)
	require.Equal(t, []string{idle.Container.ID}, removed)
	require.NoError(t, exec.Command("docker", "inspect", other).Run(), "unlabelled container must survive")
	require.NoError(t, exec.Command("docker", "inspect", busy.Container.ID).Run())

	clock.Add(7 * 24 * time.Hour)
	_, err = svc.Exec(ctx, ExecRequest{SessionKey: "agent:a1:x:busy", Argv: []string{"true"}})
	require.NoError(t, err)
	removed, err = svc.Prune(ctx, 0, 0)
	require.NoError(t, err)
	require.Equal(t, []string{busy.Container.ID}, removed, "older than max age, even if busy")
}

func TestRecreate(t *testing.T) {
	svc, _ := newTestService(t, nil)
	ctx := context.Background()
	a, err := svc.Ensure(ctx, EnsureRequest{SessionKey: "agent:a1:x:1"})
	require.NoError(t, err)
	_, err = svc.Ensure(ctx, EnsureRequest{SessionKey: "agent:a1:x:2"})
	require.NoError(t, err)
	n, err := svc.Recreate(ctx, "agent:a1:x:1", false)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	again, err := svc.Ensure(ctx, EnsureRequest{SessionKey: "agent:a1:x:1"})
	require.NoError(t, err)
	require.NotEqual(t, a.Container.ID, again.Container.ID)
	n, err = svc.Recreate(ctx, "", true)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	_, err = svc.Recreate(ctx, "", false)
	require.ErrorIs(t, err, errs.ErrInvalidArgument)
}

func TestWarmPool(t *testing.T) {
	svc, _ := newTestService(t, func(c *Config) { c.PoolSize = 2 })
	require.Eventually(t, func() bool { return svc.PoolReady() == 2 }, 20*time.Second, 20*time.Millisecond)
	ctx := context.Background()
	r, err := svc.Ensure(ctx, EnsureRequest{SessionKey: groupKey, AgentID: "a1"})
	require.NoError(t, err)
	require.True(t, r.FromPool)
	require.Equal(t, groupKey, r.Container.SessionKey)
	out, err := svc.Exec(ctx, ExecRequest{SessionKey: groupKey, AgentID: "a1", Shell: "echo pooled"})
	require.NoError(t, err)
	require.Equal(t, r.Container.ID, out.ContainerID)
	require.Eventually(t, func() bool { return svc.PoolReady() == 2 }, 20*time.Second, 20*time.Millisecond, "pool refills")
	list, err := svc.List(ctx)
	require.NoError(t, err)
	require.Len(t, list, 3)
	info := svc.Info(ctx)
	require.True(t, info.DockerReachable)
	require.True(t, info.ImagePresent)
	require.Equal(t, 2, info.PoolReady)
}

func TestExplain(t *testing.T) {
	svc, _ := newTestService(t, nil)
	ex, err := svc.Explain("agent:a1:main", "a1", nil, ProfileMain, true)
	require.NoError(t, err)
	require.True(t, ex.MainSession)
	require.True(t, ex.Sandboxed, "no session runs outside a sandbox")
	require.Equal(t, ProfileMain, ex.Profile)
	require.Equal(t, ModeNonMain, ex.Mode)
	items := map[string]ExplainItem{}
	for _, it := range ex.Items {
		items[it.Name] = it
	}
	require.Equal(t, "main", items["profile"].Value)
	require.Equal(t, "true", items["ownerWorkspace"].Value)
	require.Contains(t, items["mount /workspace"].Value, svc.volumeFor("agent:a1", KindAgentWorkspace))
	require.Equal(t, "bridge", items["docker.network"].Value)
	require.Equal(t, "absent", items["serviceState"].Value)

	p := Policy{Mode: ModeAll, Env: map[string]string{"TOKEN": "s3cret"}}
	ex, err = svc.Explain("agent:a1:main", "a1", &p, ProfileHardened, false)
	require.NoError(t, err)
	require.True(t, ex.Sandboxed)
	items = map[string]ExplainItem{}
	for _, it := range ex.Items {
		items[it.Name] = it
		require.NotContains(t, it.Value, "s3cret", "env values must not be shown")
	}
	require.Contains(t, items["mode"].Why, "configured (agents.defaults.sandbox)")
	require.Contains(t, items["docker.pidsLimit"].Why, "sandboxd setting")
	require.Equal(t, "none", items["docker.network"].Value)
	require.Equal(t, "hardened", items["profile"].Value)
	require.Equal(t, "false", items["ownerWorkspace"].Value)
	require.Equal(t, "10001:10001", items["docker.user"].Value)
	require.Equal(t, "ALL", items["capDrop"].Value)
	require.Equal(t, "TOKEN", items["docker.env"].Value)

	ex, err = svc.Explain(groupKey, "a1", nil, ProfileHardened, false)
	require.NoError(t, err)
	require.False(t, ex.MainSession)
	require.True(t, ex.Sandboxed)
}

func TestDockerSocketMissing(t *testing.T) {
	if dockerSkip != "" {
		t.Skip(dockerSkip)
	}
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
	be, err := backend.NewDocker(backend.DockerConfig{})
	require.NoError(t, err)
	defer be.Close()
	svc, err := New(Config{Backend: be, PoolSize: -1, PruneEvery: -1})
	require.NoError(t, err)
	svc.Start(context.Background())
	defer svc.Close()
	_, err = svc.Exec(context.Background(), ExecRequest{SessionKey: groupKey, Shell: "true"})
	require.ErrorIs(t, err, errs.ErrUnavailable)
	require.Contains(t, err.Error(), "start the Docker engine")
	require.Contains(t, err.Error(), "never run unsandboxed")
	info := svc.Info(context.Background())
	require.False(t, info.DockerReachable)
	require.Contains(t, info.DockerError, "start the Docker engine")
}

func TestImageMissing(t *testing.T) {
	svc, _ := newTestService(t, func(c *Config) { c.Defaults.Image = "moltbot-no-such-image:latest" })
	_, err := svc.Exec(context.Background(), ExecRequest{SessionKey: groupKey, Shell: "true"})
	require.ErrorIs(t, err, errs.ErrFailedPrecondition)
	require.Contains(t, err.Error(), "make sandbox-image")
	info := svc.Info(context.Background())
	require.True(t, info.DockerReachable)
	require.False(t, info.ImagePresent)
	require.Contains(t, info.DockerError, "make sandbox-image")
}
