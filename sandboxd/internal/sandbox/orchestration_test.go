package sandbox

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/sandboxd/internal/backend"
	"github.com/moltbot/moltbot-secure/sandboxd/internal/backend/fake"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// Unit tests of the orchestration logic on the in-memory backend. What the
// engine itself does (hardening applied, OOM, timeouts) is tested against
// the real engine in the integration-tagged files.

const (
	unitImage = "moltbot-sandbox-unit:latest"
	unitGroup = "agent:a1:telegram:group:-100123"
	unitOwner = "agent:a1:main"
)

type unitClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *unitClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *unitClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func unitPolicy() Policy {
	return Policy{Image: unitImage, MemoryBytes: 128 << 20, PidsLimit: 64, TmpfsBytes: 16 << 20}
}

func newUnitService(t *testing.T, mod func(*Config)) (*Service, *fake.Backend) {
	t.Helper()
	be := fake.New(unitImage)
	cfg := Config{Backend: be, Defaults: unitPolicy(), PoolSize: -1, PruneEvery: -1, NamePrefix: "unit", PoolRefillDelay: -1}
	if mod != nil {
		mod(&cfg)
	}
	svc, err := New(cfg)
	require.NoError(t, err)
	svc.Start(context.Background())
	t.Cleanup(svc.Close)
	return svc, be
}

func TestUnitEnsureReusesAndLabels(t *testing.T) {
	svc, be := newUnitService(t, nil)
	ctx := context.Background()
	r, err := svc.Ensure(ctx, EnsureRequest{SessionKey: unitGroup, AgentID: "a1"})
	require.NoError(t, err)
	require.True(t, r.Created)
	require.False(t, r.FromPool)
	l := r.Container.Labels
	require.Equal(t, unitGroup, l[backend.LabelSession])
	require.Equal(t, "a1", l[backend.LabelAgentID])
	require.Equal(t, "session", l[backend.LabelScope])
	require.Equal(t, "session:"+unitGroup, l[backend.LabelScopeKey])
	require.Equal(t, "hardened", l[backend.LabelProfile])
	require.Equal(t, "1", l[backend.LabelMarker])
	again, err := svc.Ensure(ctx, EnsureRequest{SessionKey: unitGroup, AgentID: "a1"})
	require.NoError(t, err)
	require.False(t, again.Created)
	require.Equal(t, r.Container.ID, again.Container.ID)
	require.Equal(t, 1, be.Creates)
	list, err := svc.List(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, unitGroup, list[0].SessionKey)
}

func TestUnitScopes(t *testing.T) {
	svc, _ := newUnitService(t, nil)
	ctx := context.Background()
	ensure := func(key, agent string, sc Scope) string {
		p := unitPolicy()
		p.Scope = sc
		r, err := svc.Ensure(ctx, EnsureRequest{SessionKey: key, AgentID: agent, Policy: &p})
		require.NoError(t, err)
		return r.Container.ID
	}
	require.NotEqual(t, ensure("agent:a1:x:1", "a1", ScopeSession), ensure("agent:a1:x:2", "a1", ScopeSession))
	require.Equal(t, ensure("agent:a1:x:1", "a1", ScopeAgent), ensure("agent:a1:x:2", "a1", ScopeAgent))
	require.NotEqual(t, ensure("agent:a1:x:1", "a1", ScopeAgent), ensure("agent:b2:x:1", "b2", ScopeAgent))
	require.Equal(t, ensure("agent:a1:x:1", "a1", ScopeShared), ensure("agent:b2:x:9", "b2", ScopeShared))
	// The agent id comes from the session key when not given.
	require.Equal(t, ensure("agent:a1:x:1", "a1", ScopeAgent), ensure("agent:a1:x:3", "", ScopeAgent))
	p := unitPolicy()
	p.Scope = ScopeAgent
	_, err := svc.Ensure(ctx, EnsureRequest{SessionKey: "nokey", Policy: &p})
	require.ErrorIs(t, err, errs.ErrInvalidArgument)
}

func TestUnitPolicyChangeRecreates(t *testing.T) {
	svc, be := newUnitService(t, nil)
	ctx := context.Background()
	first, err := svc.Ensure(ctx, EnsureRequest{SessionKey: unitGroup})
	require.NoError(t, err)
	p := unitPolicy()
	p.MemoryBytes = 96 << 20
	changed, err := svc.Ensure(ctx, EnsureRequest{SessionKey: unitGroup, Policy: &p})
	require.NoError(t, err)
	require.True(t, changed.Created)
	require.NotEqual(t, first.Container.ConfigHash, changed.Container.ConfigHash)
	require.False(t, be.Exists(first.Container.ID), "the old container must be removed")
	spec, ok := be.SpecOf(changed.Container.ID)
	require.True(t, ok)
	require.Equal(t, int64(96<<20), spec.MemoryBytes)
}

func TestUnitDeadContainerRecreated(t *testing.T) {
	svc, be := newUnitService(t, nil)
	ctx := context.Background()
	r, err := svc.Exec(ctx, ExecRequest{SessionKey: unitGroup, Argv: []string{"true"}})
	require.NoError(t, err)
	be.Kill(r.ContainerID)
	// Exec learns from the backend that the command was never sent and
	// retries once in a fresh container.
	r2, err := svc.Exec(ctx, ExecRequest{SessionKey: unitGroup, Argv: []string{"true"}})
	require.NoError(t, err)
	require.NotEqual(t, r.ContainerID, r2.ContainerID)
	// Ensure checks liveness itself.
	be.Kill(r2.ContainerID)
	e, err := svc.Ensure(ctx, EnsureRequest{SessionKey: unitGroup})
	require.NoError(t, err)
	require.True(t, e.Created)
	require.NotEqual(t, r2.ContainerID, e.Container.ID)
}

func TestUnitDiedDuringCommandNotRetried(t *testing.T) {
	svc, be := newUnitService(t, nil)
	calls := 0
	be.ExecFunc = func(c backend.Container, _ backend.Spec, _ backend.ExecSpec) (backend.ExecResult, error) {
		calls++
		return backend.ExecResult{}, fmt.Errorf("agent stream broke: %w", backend.ErrContainerGone)
	}
	_, err := svc.Exec(context.Background(), ExecRequest{SessionKey: unitGroup, Shell: "rm -rf x"})
	require.ErrorIs(t, err, errs.ErrUnavailable)
	require.ErrorContains(t, err, "died during the command")
	require.Equal(t, 1, calls, "a command that may have run is never run twice")
}

func TestUnitPidsLimitDiscardsContainer(t *testing.T) {
	svc, be := newUnitService(t, nil)
	be.ExecFunc = func(c backend.Container, _ backend.Spec, e backend.ExecSpec) (backend.ExecResult, error) {
		if e.Argv[len(e.Argv)-1] == "bomb" {
			return backend.ExecResult{ExitCode: 137, Cause: backend.CausePidsLimit}, nil
		}
		return backend.ExecResult{}, nil
	}
	ctx := context.Background()
	r, err := svc.Exec(ctx, ExecRequest{SessionKey: unitGroup, Shell: "bomb"})
	require.NoError(t, err)
	require.Equal(t, backend.CausePidsLimit, r.Cause)
	svc.Close() // waits for the background remove
	require.False(t, be.Exists(r.ContainerID))
	next, err := svc.Exec(ctx, ExecRequest{SessionKey: unitGroup, Shell: "echo fine"})
	require.NoError(t, err)
	require.NotEqual(t, r.ContainerID, next.ContainerID)
}

func TestUnitExecArguments(t *testing.T) {
	svc, be := newUnitService(t, nil)
	var got backend.ExecSpec
	be.ExecFunc = func(_ backend.Container, _ backend.Spec, e backend.ExecSpec) (backend.ExecResult, error) {
		got = e
		return backend.ExecResult{Stdout: []byte("x")}, nil
	}
	ctx := context.Background()
	_, err := svc.Exec(ctx, ExecRequest{SessionKey: unitGroup, Shell: "echo hi"})
	require.NoError(t, err)
	require.Equal(t, []string{"/bin/sh", "-c", "echo hi"}, got.Argv)
	require.Equal(t, 30*time.Second, got.Timeout)
	require.Equal(t, 1<<20, got.OutputCap)
	for _, tc := range []struct {
		name string
		req  ExecRequest
	}{
		{"argv and shell", ExecRequest{Argv: []string{"a"}, Shell: "b"}},
		{"nothing", ExecRequest{}},
		{"empty argv0", ExecRequest{Argv: []string{""}}},
		{"timeout too long", ExecRequest{Shell: "x", Timeout: time.Hour}},
		{"negative timeout", ExecRequest{Shell: "x", Timeout: -time.Second}},
		{"output cap huge", ExecRequest{Shell: "x", OutputCap: 1 << 30}},
		{"stdin too big", ExecRequest{Shell: "x", Stdin: make([]byte, 1<<20+1)}},
		{"session key newline", ExecRequest{SessionKey: "a\nb", Shell: "x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.req.SessionKey == "" {
				tc.req.SessionKey = unitGroup
			}
			_, err := svc.Exec(ctx, tc.req)
			require.ErrorIs(t, err, errs.ErrInvalidArgument)
		})
	}
}

func TestUnitPruneIdleAndOld(t *testing.T) {
	clock := &unitClock{t: time.Unix(1_800_000_000, 0)}
	svc, be := newUnitService(t, func(c *Config) { c.Now = clock.Now })
	ctx := context.Background()
	idle, err := svc.Ensure(ctx, EnsureRequest{SessionKey: "agent:a1:x:idle"})
	require.NoError(t, err)
	busy, err := svc.Ensure(ctx, EnsureRequest{SessionKey: "agent:a1:x:busy"})
	require.NoError(t, err)
	foreign := be.Add("someone-else", map[string]string{backend.LabelSession: "agent:a1:x:idle"})

	clock.Add(25 * time.Hour)
	_, err = svc.Exec(ctx, ExecRequest{SessionKey: "agent:a1:x:busy", Argv: []string{"true"}})
	require.NoError(t, err)
	removed, err := svc.Prune(ctx, 0, 0)
	require.NoError(t, err)
	require.Equal(t, []string{idle.Container.ID}, removed)
	require.True(t, be.Exists(foreign), "a container without the marker label is never touched")
	require.True(t, be.Exists(busy.Container.ID))

	clock.Add(7 * 24 * time.Hour)
	_, err = svc.Exec(ctx, ExecRequest{SessionKey: "agent:a1:x:busy", Argv: []string{"true"}})
	require.NoError(t, err)
	removed, err = svc.Prune(ctx, 0, 0)
	require.NoError(t, err)
	require.Equal(t, []string{busy.Container.ID}, removed, "older than max age, even if busy")
}

func TestUnitRecreate(t *testing.T) {
	svc, be := newUnitService(t, nil)
	ctx := context.Background()
	a, err := svc.Ensure(ctx, EnsureRequest{SessionKey: "agent:a1:x:1"})
	require.NoError(t, err)
	b, err := svc.Ensure(ctx, EnsureRequest{SessionKey: "agent:a1:x:2"})
	require.NoError(t, err)
	n, err := svc.Recreate(ctx, "agent:a1:x:1", false)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.False(t, be.Exists(a.Container.ID))
	require.True(t, be.Exists(b.Container.ID))
	again, err := svc.Ensure(ctx, EnsureRequest{SessionKey: "agent:a1:x:1"})
	require.NoError(t, err)
	require.NotEqual(t, a.Container.ID, again.Container.ID)
	n, err = svc.Recreate(ctx, "", true)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	_, err = svc.Recreate(ctx, "", false)
	require.ErrorIs(t, err, errs.ErrInvalidArgument)
}

func TestUnitWarmPool(t *testing.T) {
	svc, be := newUnitService(t, func(c *Config) { c.PoolSize = 2 })
	require.Eventually(t, func() bool { return svc.PoolReady() == 2 }, 5*time.Second, time.Millisecond)
	ctx := context.Background()
	r, err := svc.Ensure(ctx, EnsureRequest{SessionKey: unitGroup, AgentID: "a1"})
	require.NoError(t, err)
	require.True(t, r.FromPool)
	require.Equal(t, unitGroup, r.Container.SessionKey)
	require.Eventually(t, func() bool { return svc.PoolReady() == 2 }, 5*time.Second, time.Millisecond, "pool refills")
	require.Equal(t, 3, be.Creates)
	// A policy other than the default never takes a pool container.
	p := unitPolicy()
	p.MemoryBytes = 96 << 20
	o, err := svc.Ensure(ctx, EnsureRequest{SessionKey: "agent:a1:x:other", Policy: &p})
	require.NoError(t, err)
	require.False(t, o.FromPool)
	info := svc.Info(ctx)
	require.True(t, info.DockerReachable)
	require.True(t, info.ImagePresent)
	require.Equal(t, 2, info.PoolReady)
}

func TestUnitEngineDownFailsClosed(t *testing.T) {
	svc, be := newUnitService(t, nil)
	be.SetDown(fmt.Errorf("Docker is not reachable (start the Docker engine): %w", errs.ErrUnavailable))
	_, err := svc.Exec(context.Background(), ExecRequest{SessionKey: unitGroup, Shell: "true"})
	require.ErrorIs(t, err, errs.ErrUnavailable)
	require.ErrorContains(t, err, "never run unsandboxed")
	info := svc.Info(context.Background())
	require.False(t, info.DockerReachable)
	require.Contains(t, info.DockerError, "start the Docker engine")
}

func TestUnitImageMissing(t *testing.T) {
	svc, _ := newUnitService(t, func(c *Config) { c.Defaults.Image = "moltbot-no-such-image:latest" })
	_, err := svc.Exec(context.Background(), ExecRequest{SessionKey: unitGroup, Shell: "true"})
	require.ErrorIs(t, err, errs.ErrFailedPrecondition)
	require.ErrorContains(t, err, "make sandbox-image")
	info := svc.Info(context.Background())
	require.False(t, info.ImagePresent)
	require.Contains(t, info.DockerError, "make sandbox-image")
}

func TestUnitPolicyValidation(t *testing.T) {
	svc, be := newUnitService(t, nil)
	tests := []struct {
		name string
		mod  func(p *Policy)
	}{
		{"network host", func(p *Policy) { p.Network = "host" }},
		{"network container", func(p *Policy) { p.Network = "container:abc" }},
		{"docker socket bind", func(p *Policy) { p.Binds = []string{"/var/run/docker.sock:/var/run/docker.sock"} }},
		{"docker socket elsewhere", func(p *Policy) { p.Binds = []string{"/home/x/docker.sock:/s"} }},
		{"root bind", func(p *Policy) { p.Binds = []string{"/:/host:ro"} }},
		{"run bind", func(p *Policy) { p.Binds = []string{"/run:/r:ro"} }},
		{"relative bind", func(p *Policy) { p.Binds = []string{"data:/data"} }},
		{"bind over root", func(p *Policy) { p.Binds = []string{"/srv/x:/"} }},
		{"tiny memory", func(p *Policy) { p.MemoryBytes = 1 << 20 }},
		{"tmpfs over half memory", func(p *Policy) { p.TmpfsBytes = 100 << 20 }},
		{"pids limit huge", func(p *Policy) { p.PidsLimit = 1 << 20 }},
		{"bad env", func(p *Policy) { p.Env = map[string]string{"A=B": "x"} }},
		{"workspace quota tiny", func(p *Policy) { p.WorkspaceQuota = 1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := unitPolicy()
			tt.mod(&p)
			_, err := svc.Ensure(context.Background(), EnsureRequest{SessionKey: unitGroup, Policy: &p})
			require.ErrorIs(t, err, errs.ErrInvalidArgument)
			_, err = svc.Explain(unitGroup, "", &p, ProfileHardened, false)
			require.ErrorIs(t, err, errs.ErrInvalidArgument)
		})
	}
	require.Zero(t, be.Creates, "nothing invalid reaches the engine")
	_, err := New(Config{Backend: be, User: "0:0"})
	require.ErrorIs(t, err, errs.ErrInvalidArgument)
}

func TestUnitMainProfileRefusals(t *testing.T) {
	svc, be := newUnitService(t, nil)
	for _, tc := range []struct {
		name    string
		binds   []string
		network string
		profile Profile
		owner   bool
		want    error
	}{
		{"pki bind", []string{"/srv/moltbot/pki:/pki:ro"}, "", ProfileMain, true, errs.ErrPermissionDenied},
		{"state bind", []string{"/var/lib/moltbot/state:/data:ro"}, "", ProfileMain, true, errs.ErrPermissionDenied},
		{"state dir dest", []string{"/srv/data:/home/x/.moltbot:ro"}, "", ProfileMain, false, errs.ErrPermissionDenied},
		{"keys bind", []string{"/srv/keys:/k"}, "", ProfileMain, true, errs.ErrPermissionDenied},
		{"socket bind", []string{"/home/x/docker.sock:/s"}, "", ProfileMain, true, errs.ErrPermissionDenied},
		{"host network", nil, "host", ProfileMain, true, errs.ErrInvalidArgument},
		{"owner workspace hardened", nil, "", ProfileHardened, true, errs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := unitPolicy()
			p.Binds, p.MainNetwork = tc.binds, tc.network
			_, err := svc.Ensure(context.Background(), EnsureRequest{SessionKey: unitOwner, Policy: &p, Profile: tc.profile, OwnerWorkspace: tc.owner})
			require.ErrorIs(t, err, tc.want)
			_, err = svc.Explain(unitOwner, "", &p, tc.profile, tc.owner)
			require.ErrorIs(t, err, tc.want)
		})
	}
	require.Zero(t, be.Creates)
	// The same harmless bind is fine under the main profile.
	p := unitPolicy()
	p.Binds = []string{"/srv/data:/data:ro"}
	_, err := svc.Explain(unitOwner, "", &p, ProfileMain, true)
	require.NoError(t, err)
	require.False(t, strings.Contains(svc.volumeFor("agent:a1", KindAgentWorkspace), "/"))
}

// TestUnitProfileHostConfig: the Spec sandboxd builds per profile, through
// backend.Build, has the profile's network and mounts and the fixed
// hardening (the field-by-field table is backend's TestBuildHardening).
func TestUnitProfileHostConfig(t *testing.T) {
	svc, be := newUnitService(t, nil)
	ctx := context.Background()
	h, err := svc.Ensure(ctx, EnsureRequest{SessionKey: unitGroup, AgentID: "a1"})
	require.NoError(t, err)
	m, err := svc.Ensure(ctx, EnsureRequest{SessionKey: unitOwner, AgentID: "a1", Profile: ProfileMain, OwnerWorkspace: true})
	require.NoError(t, err)
	require.NotEqual(t, h.Container.ID, m.Container.ID)
	for _, tc := range []struct {
		id      string
		network string
	}{{h.Container.ID, "none"}, {m.Container.ID, "bridge"}} {
		spec, ok := be.SpecOf(tc.id)
		require.True(t, ok)
		cfg, hc, err := backend.Build(spec, true, "")
		require.NoError(t, err)
		require.Equal(t, tc.network, string(hc.NetworkMode))
		require.Equal(t, "10001:10001", cfg.User)
		require.Equal(t, []string{"ALL"}, []string(hc.CapDrop))
		require.True(t, hc.ReadonlyRootfs)
		require.Equal(t, []string{"no-new-privileges:true"}, hc.SecurityOpt)
		require.Equal(t, hc.Memory, hc.MemorySwap)
		require.Empty(t, hc.Binds)
	}
	ms, _ := be.SpecOf(m.Container.ID)
	require.Equal(t, "main", ms.Labels[backend.LabelProfile])
}

func TestUnitExplain(t *testing.T) {
	svc, _ := newUnitService(t, nil)
	ex, err := svc.Explain(unitOwner, "a1", nil, ProfileMain, true)
	require.NoError(t, err)
	require.True(t, ex.MainSession)
	require.True(t, ex.Sandboxed)
	require.Equal(t, ProfileMain, ex.Profile)
	items := map[string]ExplainItem{}
	for _, it := range ex.Items {
		items[it.Name] = it
	}
	require.Equal(t, "main", items["profile"].Value)
	require.Equal(t, "bridge", items["docker.network"].Value)
	// Values come from the effective policy, not fixed text: a changed
	// policy changes what explain says.
	p := Policy{Mode: ModeAll, Env: map[string]string{"TOKEN": "s3cret"}, MemoryBytes: 200 << 20, PidsLimit: 77}
	ex, err = svc.Explain(unitGroup, "a1", &p, ProfileHardened, false)
	require.NoError(t, err)
	items = map[string]ExplainItem{}
	for _, it := range ex.Items {
		items[it.Name] = it
		require.NotContains(t, it.Value, "s3cret", "env values must not be shown")
	}
	require.False(t, ex.MainSession)
	require.Equal(t, fmt.Sprint(200<<20), items["docker.memory"].Value)
	require.Equal(t, "77", items["docker.pidsLimit"].Value)
	require.Contains(t, items["mode"].Why, "configured (agents.defaults.sandbox)")
	require.Contains(t, items["docker.image"].Why, "sandboxd setting")
	require.Equal(t, "none", items["docker.network"].Value)
	require.Equal(t, "TOKEN", items["docker.env"].Value)
	require.Equal(t, svc.Defaults().Merge(&p).Hash("10001:10001", ProfileHardened, false), ex.ConfigHash)
}
