package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/sandboxd/internal/backend"
	"github.com/moltbot/moltbot-secure/sandboxd/internal/backend/fake"
	"github.com/moltbot/moltbot-secure/services/errs"
)

func wsOf(t *testing.T, be *fake.Backend, id string) (rw backend.Volume, ro *backend.Volume) {
	t.Helper()
	spec, ok := be.SpecOf(id)
	require.True(t, ok)
	for _, v := range spec.Volumes {
		switch {
		case v.Target == WorkspaceTarget && !v.ReadOnly:
			rw = v
		case v.Target == AgentTarget && v.ReadOnly:
			vv := v
			ro = &vv
		default:
			t.Fatalf("unexpected mount %+v", v)
		}
	}
	require.NotEmpty(t, rw.Name, "no workspace at /workspace")
	require.Equal(t, WorkspaceTarget, spec.WorkingDir)
	return rw, ro
}

func TestWorkspaceAccessLayouts(t *testing.T) {
	svc, be := newUnitService(t, nil)
	ctx := context.Background()
	ensure := func(key string, acc WorkspaceAccess, profile Profile, owner bool) string {
		p := unitPolicy()
		p.WorkspaceAccess = acc
		r, err := svc.Ensure(ctx, EnsureRequest{SessionKey: key, Policy: &p, Profile: profile, OwnerWorkspace: owner})
		require.NoError(t, err)
		return r.Container.ID
	}
	none, _ := wsOf(t, be, ensure(unitGroup, WorkspaceNone, ProfileHardened, false))
	require.Equal(t, KindWorkspace, none.Labels[backend.LabelVolume])
	require.Equal(t, unitGroup, none.Labels[backend.LabelSession])
	require.Equal(t, "session:"+unitGroup, none.Labels[backend.LabelScopeKey])

	roWS, roAgent := wsOf(t, be, ensure(unitGroup, WorkspaceRO, ProfileHardened, false))
	require.Equal(t, none.Name, roWS.Name, "ro keeps the session's own workspace")
	require.NotNil(t, roAgent)
	require.Equal(t, KindAgentWorkspace, roAgent.Labels[backend.LabelVolume])
	require.Equal(t, "a1", roAgent.Labels[backend.LabelAgentID])

	rw, rwAgent := wsOf(t, be, ensure(unitGroup, WorkspaceRW, ProfileHardened, false))
	require.Nil(t, rwAgent)
	require.Equal(t, roAgent.Name, rw.Name, "rw mounts the agent's workspace at /workspace")

	owner, ownerRO := wsOf(t, be, ensure(unitOwner, WorkspaceNone, ProfileMain, true))
	require.Nil(t, ownerRO)
	require.Equal(t, roAgent.Name, owner.Name, "the owner's session gets the agent's workspace rw")

	// Main profile without the owner's workspace (mode off): never the
	// agent's workspace rw, even when rw is configured.
	offRW, offRO := wsOf(t, be, ensure("agent:a1:telegram:dm:7", WorkspaceRW, ProfileMain, false))
	require.Nil(t, offRO)
	require.Equal(t, KindWorkspace, offRW.Labels[backend.LabelVolume])
	require.NotEqual(t, owner.Name, offRW.Name)

	// Every container has RLIMIT_FSIZE at the quota.
	spec, _ := be.SpecOf(ensure(unitGroup, WorkspaceNone, ProfileHardened, false))
	require.Equal(t, int64(512<<20), spec.Fsize)
	p := unitPolicy()
	p.WorkspaceQuota = 8 << 20
	r, err := svc.Ensure(ctx, EnsureRequest{SessionKey: unitGroup, Policy: &p})
	require.NoError(t, err)
	spec, _ = be.SpecOf(r.Container.ID)
	require.Equal(t, int64(8<<20), spec.Fsize)
	_, _, err = backend.Build(spec, true, "")
	require.NoError(t, err)

	// No agent id anywhere: the agent's workspace cannot be chosen.
	p = unitPolicy()
	p.WorkspaceAccess = WorkspaceRO
	_, err = svc.Ensure(ctx, EnsureRequest{SessionKey: "telegram:group:1", Policy: &p})
	require.ErrorIs(t, err, errs.ErrInvalidArgument)
}

func TestWorkspaceSurvivesRecreateAndConfigChange(t *testing.T) {
	clock := &unitClock{t: time.Unix(1_800_000_000, 0)}
	svc, be := newUnitService(t, func(c *Config) { c.Now = clock.Now })
	ctx := context.Background()
	first, err := svc.Ensure(ctx, EnsureRequest{SessionKey: unitGroup})
	require.NoError(t, err)
	vol, _ := wsOf(t, be, first.Container.ID)

	_, err = svc.Recreate(ctx, unitGroup, false)
	require.NoError(t, err)
	again, err := svc.Ensure(ctx, EnsureRequest{SessionKey: unitGroup})
	require.NoError(t, err)
	require.NotEqual(t, first.Container.ID, again.Container.ID)
	v2, _ := wsOf(t, be, again.Container.ID)
	require.Equal(t, vol.Name, v2.Name, "recreate keeps the workspace")

	p := unitPolicy()
	p.MemoryBytes = 96 << 20
	changed, err := svc.Ensure(ctx, EnsureRequest{SessionKey: unitGroup, Policy: &p})
	require.NoError(t, err)
	require.True(t, changed.Created)
	v3, _ := wsOf(t, be, changed.Container.ID)
	require.Equal(t, vol.Name, v3.Name, "a config-hash change keeps the workspace")

	clock.Add(48 * time.Hour)
	removed, err := svc.Prune(ctx, 0, 0)
	require.NoError(t, err)
	require.Equal(t, []string{changed.Container.ID}, removed)
	require.True(t, be.HasVolume(vol.Name), "idle container pruning keeps the workspace")
	after, err := svc.Ensure(ctx, EnsureRequest{SessionKey: unitGroup, Policy: &p})
	require.NoError(t, err)
	v4, _ := wsOf(t, be, after.Container.ID)
	require.Equal(t, vol.Name, v4.Name)
}

func TestWorkspaceScopes(t *testing.T) {
	svc, be := newUnitService(t, nil)
	ctx := context.Background()
	ws := func(key, agent string, sc Scope) string {
		p := unitPolicy()
		p.Scope = sc
		r, err := svc.Ensure(ctx, EnsureRequest{SessionKey: key, AgentID: agent, Policy: &p})
		require.NoError(t, err)
		v, _ := wsOf(t, be, r.Container.ID)
		return v.Name
	}
	require.NotEqual(t, ws("agent:a1:x:1", "a1", ScopeSession), ws("agent:a1:x:2", "a1", ScopeSession))
	require.Equal(t, ws("agent:a1:x:1", "a1", ScopeAgent), ws("agent:a1:x:2", "a1", ScopeAgent))
	require.NotEqual(t, ws("agent:a1:x:1", "a1", ScopeAgent), ws("agent:b2:x:1", "b2", ScopeAgent))
	require.Equal(t, ws("agent:a1:x:1", "a1", ScopeShared), ws("agent:b2:x:2", "b2", ScopeShared))
	require.NotEqual(t, ws("agent:a1:x:1", "a1", ScopeShared), ws("agent:a1:x:1", "a1", ScopeSession))

	// explain says who shares it.
	for sc, want := range map[Scope]string{ScopeSession: "no other session sees it", ScopeAgent: "every session of agent a1", ScopeShared: "shared by every session"} {
		p := unitPolicy()
		p.Scope = sc
		ex, err := svc.Explain("agent:a1:x:1", "a1", &p, ProfileHardened, false)
		require.NoError(t, err)
		require.Contains(t, item(ex, "mount /workspace").Why, want, sc)
		require.Contains(t, item(ex, "mount /workspace").Value, ws("agent:a1:x:1", "a1", sc))
	}
}

func item(ex Explanation, name string) ExplainItem {
	for _, it := range ex.Items {
		if it.Name == name {
			return it
		}
	}
	return ExplainItem{}
}

func TestExplainShowsEveryMount(t *testing.T) {
	svc, be := newUnitService(t, nil)
	p := unitPolicy()
	p.WorkspaceAccess = WorkspaceRO
	p.Binds = []string{"/srv/data:/data:ro"}
	ex, err := svc.Explain(unitGroup, "a1", &p, ProfileHardened, false)
	require.NoError(t, err)
	r, err := svc.Ensure(context.Background(), EnsureRequest{SessionKey: unitGroup, AgentID: "a1", Policy: &p})
	require.NoError(t, err)
	spec, _ := be.SpecOf(r.Container.ID)
	_, hc, err := backend.Build(spec, true, "")
	require.NoError(t, err)
	// Every mount the engine gets is explained, with its volume or source.
	var targets []string
	for _, m := range hc.Mounts {
		targets = append(targets, m.Target)
		it := item(ex, "mount "+m.Target)
		require.Contains(t, it.Value, m.Source, m.Target)
		require.Contains(t, it.Value, map[bool]string{true: "ro", false: "rw"}[m.ReadOnly])
		require.NotEmpty(t, it.Why)
	}
	for target := range hc.Tmpfs {
		targets = append(targets, target)
		require.Contains(t, item(ex, "mount "+target).Value, "noexec")
	}
	for _, b := range hc.Binds {
		dst := strings.Split(b, ":")[1]
		targets = append(targets, dst)
		require.Contains(t, item(ex, "mount "+dst).Value, b)
	}
	require.ElementsMatch(t, []string{"/workspace", "/agent", "/tmp", "/var/tmp", "/run", "/data"}, targets)
	n := 0
	for _, it := range ex.Items {
		if strings.HasPrefix(it.Name, "mount ") {
			n++
		}
	}
	require.Equal(t, len(targets), n, "explain lists exactly the mounts")
	require.Equal(t, "/workspace", item(ex, "workingDir").Value)
	require.Equal(t, fmt.Sprint(512<<20), item(ex, "workspaceQuota").Value)
}

func TestWorkspaceQuotaRefusesNextCommand(t *testing.T) {
	svc, be := newUnitService(t, func(c *Config) { c.WatchEvery = -1 })
	ctx := context.Background()
	p := unitPolicy()
	p.WorkspaceQuota = 8 << 20
	first, err := svc.Exec(ctx, ExecRequest{SessionKey: unitGroup, Policy: &p, Shell: "true"})
	require.NoError(t, err)
	vol, _ := wsOf(t, be, first.ContainerID)
	be.SetUsage(vol.Name, 8<<20) // exactly the quota: fine
	_, err = svc.Exec(ctx, ExecRequest{SessionKey: unitGroup, Policy: &p, Shell: "write"})
	require.NoError(t, err)
	be.SetUsage(vol.Name, 8<<20+4096) // the command that wrote this succeeds...
	r, err := svc.Exec(ctx, ExecRequest{SessionKey: unitGroup, Policy: &p, Shell: "write more"})
	require.NoError(t, err)
	svc.wg.Wait()
	require.False(t, be.Exists(r.ContainerID), "past the quota the container goes (processes it left must not keep writing)")
	require.True(t, be.HasVolume(vol.Name), "the workspace stays")
	creates := be.Creates
	// ...and the next one is refused, naming the quota and the fix.
	_, err = svc.Exec(ctx, ExecRequest{SessionKey: unitGroup, Policy: &p, Shell: "echo x"})
	require.ErrorIs(t, err, errs.ErrResourceExhausted)
	require.ErrorContains(t, err, "quota of 8.0 MiB (8388608 bytes)")
	require.ErrorContains(t, err, "agents.defaults.sandbox.workspaceQuota")
	require.ErrorContains(t, err, "moltbot sandbox prune --workspaces")
	require.ErrorContains(t, err, "moltbot sandbox recreate --session "+unitGroup+" --reset-workspace")
	require.Equal(t, creates+1, be.Creates, "the refusal measured in a fresh container")

	// list shows the usage.
	ws, err := svc.Workspaces(ctx)
	require.NoError(t, err)
	require.Len(t, ws, 1)
	require.Equal(t, int64(8<<20+4096), ws[0].Usage)
	require.Equal(t, int64(8<<20), ws[0].Quota)
	require.Equal(t, unitGroup, ws[0].SessionKey)

	// A reset starts clean.
	_, vols, err := svc.RecreateReset(ctx, unitGroup, false)
	require.NoError(t, err)
	require.Equal(t, []string{vol.Name}, vols)
	require.False(t, be.HasVolume(vol.Name))
	_, err = svc.Exec(ctx, ExecRequest{SessionKey: unitGroup, Policy: &p, Shell: "echo x"})
	require.NoError(t, err)
}

// The measurement after a command is asked for with the command (one
// round trip), and what it reports is what the next command is judged by.
func TestWorkspaceMeasuredWithTheCommand(t *testing.T) {
	svc, be := newUnitService(t, func(c *Config) { c.WatchEvery = -1 })
	ctx := context.Background()
	p := unitPolicy()
	p.WorkspaceQuota = 4 << 20
	var measures []string
	var vol string
	be.ExecFunc = func(c backend.Container, _ backend.Spec, e backend.ExecSpec) (backend.ExecResult, error) {
		measures = append(measures, e.Measure)
		if e.Argv[2] == "fill" {
			be.SetUsage(vol, 5<<20)
		}
		return backend.ExecResult{}, nil
	}
	r, err := svc.Exec(ctx, ExecRequest{SessionKey: unitGroup, Policy: &p, Shell: "true"})
	require.NoError(t, err)
	v, _ := wsOf(t, be, r.ContainerID)
	vol = v.Name
	_, err = svc.Exec(ctx, ExecRequest{SessionKey: unitGroup, Policy: &p, Shell: "fill"})
	require.NoError(t, err)
	require.Equal(t, []string{WorkspaceTarget, WorkspaceTarget}, measures[len(measures)-2:])
	_, err = svc.Exec(ctx, ExecRequest{SessionKey: unitGroup, Policy: &p, Shell: "next"})
	require.ErrorIs(t, err, errs.ErrResourceExhausted)
	require.ErrorContains(t, err, "5.0 MiB")
}

func TestWorkspaceUnmeasurableCountsAsOver(t *testing.T) {
	svc, be := newUnitService(t, func(c *Config) { c.WatchEvery = -1 })
	ctx := context.Background()
	be.ExecFunc = func(c backend.Container, _ backend.Spec, e backend.ExecSpec) (backend.ExecResult, error) {
		return backend.ExecResult{}, nil
	}
	r, err := svc.Exec(ctx, ExecRequest{SessionKey: unitGroup, Shell: "chmod 000 d"})
	require.NoError(t, err)
	vol, _ := wsOf(t, be, r.ContainerID)
	be.SetUsage(vol.Name, -1) // du fails: the service must not take that as small
	_, err = svc.Exec(ctx, ExecRequest{SessionKey: unitGroup, Shell: "x"})
	require.NoError(t, err, "this command ran; its measurement failed")
	_, err = svc.Exec(ctx, ExecRequest{SessionKey: unitGroup, Shell: "y"})
	require.ErrorIs(t, err, errs.ErrResourceExhausted)
	require.ErrorContains(t, err, "could not be measured")
}

func TestWorkspaceWatchStopsCommand(t *testing.T) {
	svc, be := newUnitService(t, func(c *Config) { c.WatchEvery = 5 * time.Millisecond })
	ctx := context.Background()
	p := unitPolicy()
	p.WorkspaceQuota = 4 << 20
	var vol string
	be.ExecFunc = func(c backend.Container, spec backend.Spec, e backend.ExecSpec) (backend.ExecResult, error) {
		if e.Argv[2] != "writer" {
			return backend.ExecResult{}, nil
		}
		be.SetUsage(vol, 64<<20) // writes far past the quota, then keeps running
		for be.Exists(c.ID) {
			time.Sleep(time.Millisecond)
		}
		return backend.ExecResult{}, fmt.Errorf("stream ended: %w", backend.ErrContainerGone)
	}
	r, err := svc.Exec(ctx, ExecRequest{SessionKey: unitGroup, Policy: &p, Shell: "true"})
	require.NoError(t, err)
	v, _ := wsOf(t, be, r.ContainerID)
	vol = v.Name
	start := time.Now()
	_, err = svc.Exec(ctx, ExecRequest{SessionKey: unitGroup, Policy: &p, Shell: "writer", Timeout: time.Minute})
	require.ErrorIs(t, err, errs.ErrResourceExhausted)
	require.ErrorContains(t, err, "the command was stopped")
	require.Less(t, time.Since(start), 5*time.Second)
	require.False(t, be.Exists(r.ContainerID))
}

func TestPruneWorkspacesIdleOnly(t *testing.T) {
	clock := &unitClock{t: time.Unix(1_800_000_000, 0)}
	svc, be := newUnitService(t, func(c *Config) { c.Now = clock.Now; c.WatchEvery = -1 })
	ctx := context.Background()
	idle, err := svc.Exec(ctx, ExecRequest{SessionKey: "agent:a1:x:idle", Shell: "true"})
	require.NoError(t, err)
	busy, err := svc.Exec(ctx, ExecRequest{SessionKey: "agent:a1:x:busy", Shell: "true"})
	require.NoError(t, err)
	owner, err := svc.Exec(ctx, ExecRequest{SessionKey: unitOwner, Profile: ProfileMain, OwnerWorkspace: true, Shell: "true"})
	require.NoError(t, err)
	idleVol, _ := wsOf(t, be, idle.ContainerID)
	busyVol, _ := wsOf(t, be, busy.ContainerID)
	ownerVol, _ := wsOf(t, be, owner.ContainerID)
	be.AddVolume("someone-elses", map[string]string{backend.LabelVolume: KindWorkspace})

	clock.Add(3 * time.Hour)
	_, err = svc.Exec(ctx, ExecRequest{SessionKey: "agent:a1:x:busy", Shell: "true"})
	require.NoError(t, err)
	removed, err := svc.PruneWorkspaces(ctx, 2*time.Hour)
	require.NoError(t, err)
	require.Equal(t, []string{idleVol.Name}, removed)
	require.False(t, be.HasVolume(idleVol.Name))
	require.False(t, be.Exists(idle.ContainerID), "its container went first")
	require.True(t, be.HasVolume(busyVol.Name))
	require.True(t, be.HasVolume(ownerVol.Name), "agent workspaces are never pruned")
	require.True(t, be.HasVolume("someone-elses"), "a volume without the marker label is never touched")
	ws, err := svc.Workspaces(ctx)
	require.NoError(t, err)
	require.Len(t, ws, 2)
}

func TestWorkspaceIndexSurvivesRestartWithPool(t *testing.T) {
	dir := t.TempDir()
	index := filepath.Join(dir, "workspaces.json")
	be := fake.New(unitImage)
	start := func(pool int) *Service {
		svc, err := New(Config{Backend: be, Defaults: unitPolicy(), PoolSize: pool, PruneEvery: -1, NamePrefix: "unit", WorkspaceIndex: index, WatchEvery: -1, PoolRefillDelay: -1})
		require.NoError(t, err)
		svc.Start(context.Background())
		return svc
	}
	svc := start(1)
	require.Eventually(t, func() bool { return svc.PoolReady() == 1 }, 5*time.Second, time.Millisecond)
	ctx := context.Background()
	r, err := svc.Exec(ctx, ExecRequest{SessionKey: unitGroup, Shell: "true"})
	require.NoError(t, err)
	vol, _ := wsOf(t, be, r.ContainerID)
	require.Contains(t, vol.Name, "-ws-pool-", "the pool brought the workspace")
	svc.Close()
	b, err := os.ReadFile(index)
	require.NoError(t, err)
	var f wsFile
	require.NoError(t, json.Unmarshal(b, &f))
	require.Len(t, f.Workspaces, 1)
	require.Equal(t, vol.Name, f.Workspaces[0].Volume)

	// After a restart and the container's removal, the session gets the
	// same (pool-made) workspace back, not a fresh one.
	svc = start(-1)
	_, err = svc.Recreate(ctx, unitGroup, false)
	require.NoError(t, err)
	again, err := svc.Exec(ctx, ExecRequest{SessionKey: unitGroup, Shell: "true"})
	require.NoError(t, err)
	v2, _ := wsOf(t, be, again.ContainerID)
	require.Equal(t, vol.Name, v2.Name)

	// A second session never gets a pool volume already taken.
	other, err := svc.Exec(ctx, ExecRequest{SessionKey: "agent:a1:x:other", Shell: "true"})
	require.NoError(t, err)
	v3, _ := wsOf(t, be, other.ContainerID)
	require.NotEqual(t, vol.Name, v3.Name)

	svc.Close() // its index writes are done

	// A corrupt index is reported with the fix, and volumes are still found by label.
	require.NoError(t, os.WriteFile(index, []byte("{"), 0o600))
	s2, err := New(Config{Backend: be, Defaults: unitPolicy(), PoolSize: -1, PruneEvery: -1, NamePrefix: "unit", WorkspaceIndex: index})
	require.NoError(t, err)
	err = s2.loadIndex(ctx)
	require.ErrorContains(t, err, index+".bak")
	// The session keeps its own (label-named) workspace, and the broken
	// index and its backup are left for the operator.
	bak, err := os.ReadFile(index + ".bak")
	require.NoError(t, err)
	s2.Start(ctx)
	r3, err := s2.Exec(ctx, ExecRequest{SessionKey: "agent:a1:x:other", Shell: "true"})
	require.NoError(t, err)
	v4, _ := wsOf(t, be, r3.ContainerID)
	require.Equal(t, v3.Name, v4.Name)
	s2.Close()
	b, err = os.ReadFile(index)
	require.NoError(t, err)
	require.Equal(t, "{", string(b))
	b, err = os.ReadFile(index + ".bak")
	require.NoError(t, err)
	require.Equal(t, bak, b)
}

func TestPoolWorkspaceRemovedWithUnusedPoolContainer(t *testing.T) {
	svc, be := newUnitService(t, func(c *Config) { c.PoolSize = 1 })
	require.Eventually(t, func() bool { return svc.PoolReady() == 1 }, 5*time.Second, time.Millisecond)
	ctx := context.Background()
	r, err := svc.Exec(ctx, ExecRequest{SessionKey: unitGroup, Shell: "true"})
	require.NoError(t, err)
	taken, _ := wsOf(t, be, r.ContainerID)
	require.Eventually(t, func() bool { return svc.PoolReady() == 1 }, 5*time.Second, time.Millisecond)
	list, err := svc.List(ctx)
	require.NoError(t, err)
	var pooled string
	for _, ci := range list {
		if ci.Pool {
			pooled = ci.Labels[LabelWorkspace]
		}
	}
	require.NotEmpty(t, pooled)
	svc.Close() // no refill behind our back
	_, err = svc.Recreate(ctx, "", true)
	require.NoError(t, err)
	require.False(t, be.HasVolume(pooled), "a pool workspace nobody used goes with its container")
	require.True(t, be.HasVolume(taken.Name), "a session's workspace stays")
}

// A new workspace reaches the index shortly after its first command (not
// during it), and at Close at the latest.
func TestWorkspaceIndexSavedSoonAndAtClose(t *testing.T) {
	index := filepath.Join(t.TempDir(), "sandbox-workspaces.json")
	be := fake.New(unitImage)
	svc, err := New(Config{Backend: be, Defaults: unitPolicy(), PoolSize: -1, PruneEvery: -1, NamePrefix: "unit", WorkspaceIndex: index, WatchEvery: -1, PoolRefillDelay: -1})
	require.NoError(t, err)
	svc.Start(context.Background())
	ctx := context.Background()
	r, err := svc.Exec(ctx, ExecRequest{SessionKey: unitGroup, Shell: "true"})
	require.NoError(t, err)
	first, _ := wsOf(t, be, r.ContainerID)
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(index)
		return err == nil && strings.Contains(string(b), first.Name)
	}, 5*time.Second, 10*time.Millisecond)

	r, err = svc.Exec(ctx, ExecRequest{SessionKey: "agent:a1:telegram:group:-77", Shell: "true"})
	require.NoError(t, err)
	second, _ := wsOf(t, be, r.ContainerID)
	svc.Close()
	b, err := os.ReadFile(index)
	require.NoError(t, err)
	require.Contains(t, string(b), second.Name, "Close saves what was waiting")
}
