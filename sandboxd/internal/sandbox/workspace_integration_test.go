//go:build integration

package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/sandboxd/internal/backend"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// Workspaces on the real engine with the test image (issue 17's
// acceptance list).

func run(t *testing.T, svc *Service, req ExecRequest) ExecResult {
	t.Helper()
	if req.Timeout == 0 {
		req.Timeout = 20 * time.Second
	}
	r, err := svc.Exec(context.Background(), req)
	require.NoError(t, err)
	return r
}

func mountsOf(t *testing.T, id string) []string {
	t.Helper()
	var ms []struct {
		Type, Name, Destination string
		RW                      bool
	}
	require.NoError(t, json.Unmarshal([]byte(docker(t, "inspect", "-f", "{{json .Mounts}}", id)), &ms))
	var out []string
	for _, m := range ms {
		if m.Type == "volume" {
			out = append(out, fmt.Sprintf("%s:%s:%v", m.Name, m.Destination, m.RW))
		}
	}
	return out
}

func TestWorkspaceKeptAcrossCommandsRecreateAndConfigChange(t *testing.T) {
	svc, _ := newTestService(t, nil)
	ctx := context.Background()
	w := run(t, svc, ExecRequest{SessionKey: groupKey, AgentID: "a1", Shell: "pwd; echo kept > a.txt"})
	require.Equal(t, "/workspace\n", string(w.Stdout), "stderr %s", w.Stderr)
	require.Equal(t, 0, w.ExitCode, "stderr %s", w.Stderr)
	vol := docker(t, "inspect", "-f", `{{index .Config.Labels "moltbot.sandbox.workspace"}}`, w.ContainerID)
	require.Equal(t, "workspace session:"+groupKey+" "+groupKey, docker(t, "volume", "inspect", "-f",
		`{{index .Labels "moltbot.sandbox.volume"}} {{index .Labels "moltbot.sandbox.scope-key"}} {{index .Labels "moltbot.sandbox.session"}}`, vol))
	require.NotEmpty(t, docker(t, "volume", "inspect", "-f", `{{index .Labels "moltbot.sandbox.instance"}}`, vol), "make purge deletes by the instance label")

	r := run(t, svc, ExecRequest{SessionKey: groupKey, AgentID: "a1", Shell: "cat /workspace/a.txt"})
	require.Equal(t, "kept\n", string(r.Stdout), "the next command reads it")

	n, err := svc.Recreate(ctx, groupKey, false)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	r = run(t, svc, ExecRequest{SessionKey: groupKey, AgentID: "a1", Shell: "cat a.txt"})
	require.NotEqual(t, w.ContainerID, r.ContainerID)
	require.Equal(t, "kept\n", string(r.Stdout), "survives sandbox recreate")

	p := testPolicy()
	p.MemoryBytes = 96 << 20
	r2 := run(t, svc, ExecRequest{SessionKey: groupKey, AgentID: "a1", Shell: "cat a.txt", Policy: &p})
	require.NotEqual(t, r.ContainerID, r2.ContainerID, "a config-hash change recreates the container")
	require.Equal(t, "kept\n", string(r2.Stdout), "survives a config-hash change")

	// Another session (scope session) cannot read it: its own workspace,
	// and no mount of the first one.
	o := run(t, svc, ExecRequest{SessionKey: "agent:a1:telegram:group:-200", AgentID: "a1", Shell: "ls -A /workspace; cat a.txt"})
	require.NotEqual(t, 0, o.ExitCode)
	require.NotContains(t, string(o.Stdout), "kept")
	require.NotContains(t, strings.Join(mountsOf(t, o.ContainerID), ","), vol)

	// Hardening stays with the workspace mounted.
	h := run(t, svc, ExecRequest{SessionKey: groupKey, AgentID: "a1", Policy: &p, Shell: strings.Join([]string{
		"touch /x 2>/dev/null && echo rootfs-writable",
		"grep CapEff /proc/self/status | cut -f2",
		"grep NoNewPrivs /proc/self/status | cut -f2",
		"id -u",
		"ls /sys/class/net",
		"mknod /workspace/null c 1 3 2>/dev/null && echo mknod-ok",
		"mkfifo /workspace/fifo && echo fifo-ok",
		// A setuid binary in the workspace gains nothing (it can only be
		// the sandbox user's own, and no-new-privileges ignores the bit).
		"cp /bin/busybox /workspace/id && chmod 4755 /workspace/id && /workspace/id -u",
		"ulimit -f", // 512-byte blocks: RLIMIT_FSIZE is the quota
	}, "; ")})
	require.Equal(t, "0000000000000000\n1\n10001\nlo\nfifo-ok\n10001\n"+strconv.Itoa(512<<11)+"\n", string(h.Stdout), "stderr %s", h.Stderr)
}

func TestWorkspaceAccessModesOnEngine(t *testing.T) {
	svc, _ := newTestService(t, nil)
	// The owner's session writes into the agent's workspace...
	own := run(t, svc, ExecRequest{SessionKey: ownerKey, AgentID: "a1", Profile: ProfileMain, OwnerWorkspace: true, Shell: "echo agentfile > notes.txt; pwd"})
	require.Equal(t, "/workspace\n", string(own.Stdout), "stderr %s", own.Stderr)
	agentVol := svc.volumeFor("agent:a1", KindAgentWorkspace)
	require.Equal(t, []string{agentVol + ":/workspace:true"}, mountsOf(t, own.ContainerID))

	// ...ro: the session's own workspace rw plus the agent's at /agent ro.
	ro := testPolicy()
	ro.WorkspaceAccess = WorkspaceRO
	r := run(t, svc, ExecRequest{SessionKey: groupKey, AgentID: "a1", Policy: &ro,
		Shell: "cat /agent/notes.txt; touch /agent/x 2>&1 || true; echo mine > own.txt && cat own.txt"})
	require.Contains(t, string(r.Stdout), "agentfile\n")
	require.Contains(t, string(r.Stdout), "Read-only file system")
	require.Contains(t, string(r.Stdout), "mine\n")
	ms := mountsOf(t, r.ContainerID)
	require.Len(t, ms, 2)
	require.Contains(t, ms, agentVol+":/agent:false")

	// rw: the agent's workspace rw at /workspace.
	rw := testPolicy()
	rw.WorkspaceAccess = WorkspaceRW
	r = run(t, svc, ExecRequest{SessionKey: groupKey, AgentID: "a1", Policy: &rw, Shell: "cat notes.txt"})
	require.Equal(t, "agentfile\n", string(r.Stdout))
	require.Equal(t, []string{agentVol + ":/workspace:true"}, mountsOf(t, r.ContainerID))
}

// TestWorkspaceQuotaOnEngine: RLIMIT_FSIZE cuts any single file at the
// quota; a command that passes it in several files runs, the next one is
// refused with the fix; a writer that keeps going is stopped within the
// stated bound (docs: quota + write rate x (WatchEvery + one du)).
func TestWorkspaceQuotaOnEngine(t *testing.T) {
	svc, _ := newTestService(t, nil)
	p := testPolicy()
	p.WorkspaceQuota = 4 << 20
	big := run(t, svc, ExecRequest{SessionKey: groupKey, Policy: &p, Shell: "head -c 10485760 /dev/zero > big; echo rc=$?; wc -c < big"})
	require.Contains(t, string(big.Stdout), "\n4194304\n", "one file is cut at the quota; stderr %s", big.Stderr)
	require.NotContains(t, string(big.Stdout), "rc=0")
	// The file plus the directory's own blocks pass the quota: the next
	// command is refused, naming the quota and the fix.
	_, err := svc.Exec(context.Background(), ExecRequest{SessionKey: groupKey, Policy: &p, Shell: "echo refused?"})
	require.ErrorIs(t, err, errs.ErrResourceExhausted)
	require.ErrorContains(t, err, "quota of 4.0 MiB (4194304 bytes)")
	require.ErrorContains(t, err, "moltbot sandbox prune --workspaces")
	ws, err := svc.Workspaces(context.Background())
	require.NoError(t, err)
	require.Len(t, ws, 1)
	// One command writing one file overshoots by at most the quota (the
	// file is cut there) plus directory blocks.
	require.Greater(t, ws[0].Usage, p.WorkspaceQuota)
	require.Less(t, ws[0].Usage, p.WorkspaceQuota+64<<10, "usage %d", ws[0].Usage)
	_, vols, err := svc.RecreateReset(context.Background(), groupKey, false)
	require.NoError(t, err)
	require.Len(t, vols, 1)
	require.Equal(t, "fresh\n", string(run(t, svc, ExecRequest{SessionKey: groupKey, Policy: &p, Shell: "ls -A; echo fresh"}).Stdout))

	// A writer at about 10 MiB/s that never stops.
	const rate = 10 << 20
	other := "agent:a1:telegram:group:-300"
	start := time.Now()
	_, err = svc.Exec(context.Background(), ExecRequest{SessionKey: other, Policy: &p, Timeout: time.Minute,
		Shell: "i=0; while :; do head -c 1048576 /dev/zero > f$i; i=$((i+1)); sleep 0.1; done"})
	took := time.Since(start)
	require.ErrorIs(t, err, errs.ErrResourceExhausted)
	require.ErrorContains(t, err, "the command was stopped")
	var usage int64
	ws, err = svc.Workspaces(context.Background())
	require.NoError(t, err)
	for _, w := range ws {
		if w.SessionKey == other {
			usage = w.Usage
		}
	}
	bound := p.WorkspaceQuota + int64(float64(rate)*(svc.cfg.WatchEvery.Seconds()+0.5))
	t.Logf("writer stopped after %s at %d bytes (quota %d, stated bound %d)", took, usage, p.WorkspaceQuota, bound)
	require.Greater(t, usage, p.WorkspaceQuota)
	require.LessOrEqual(t, usage, bound)
}

// TestWorkspaceSymlinkNeverFollowed: a symlink planted in the workspace
// (to the agent's workspace, to /, to the volume's host path) is not
// counted by the measurement and a reset deletes the link, not its target.
func TestWorkspaceSymlinkNeverFollowed(t *testing.T) {
	svc, _ := newTestService(t, nil)
	own := run(t, svc, ExecRequest{SessionKey: ownerKey, AgentID: "a1", Profile: ProfileMain, OwnerWorkspace: true,
		Shell: "head -c 8388608 /dev/zero > keep && echo ok"})
	require.Equal(t, "ok\n", string(own.Stdout), "stderr %s", own.Stderr)
	agentVol := svc.volumeFor("agent:a1", KindAgentWorkspace)
	hostPath := docker(t, "volume", "inspect", "-f", "{{.Mountpoint}}", agentVol)

	ro := testPolicy()
	ro.WorkspaceAccess = WorkspaceRO
	r := run(t, svc, ExecRequest{SessionKey: groupKey, AgentID: "a1", Policy: &ro, Shell: strings.Join([]string{
		"ln -s /agent agent-link", "ln -s /agent/keep keep-link", "ln -s / root-link", "ln -s " + hostPath + "/keep host-link",
		"mkdir d && ln -s /agent d/up", "echo planted",
	}, " && ")})
	require.Equal(t, "planted\n", string(r.Stdout), "stderr %s", r.Stderr)
	ws, err := svc.Workspaces(context.Background())
	require.NoError(t, err)
	for _, w := range ws {
		if w.SessionKey == groupKey {
			require.Less(t, w.Usage, int64(1<<20), "the 8 MiB behind the links is not counted")
		}
	}
	_, vols, err := svc.RecreateReset(context.Background(), groupKey, false)
	require.NoError(t, err)
	require.Len(t, vols, 1)
	require.Error(t, exec.Command("docker", "volume", "inspect", vols[0]).Run(), "the workspace is gone")
	chk := run(t, svc, ExecRequest{SessionKey: ownerKey, AgentID: "a1", Profile: ProfileMain, OwnerWorkspace: true, Shell: "wc -c < keep"})
	require.Equal(t, "8388608\n", string(chk.Stdout), "the link targets are untouched")
}

// TestWorkspaceUnreadableOnEngine: a directory the sandbox user cannot read
// makes the workspace unmeasurable, which counts as over the quota: the
// command that made it ran, the next is refused, a reset starts clean.
func TestWorkspaceUnreadableOnEngine(t *testing.T) {
	svc, _ := newTestService(t, nil)
	r := run(t, svc, ExecRequest{SessionKey: groupKey, AgentID: "a1", Shell: "mkdir d && head -c 1048576 /dev/zero > d/f && chmod 000 d && echo hidden"})
	require.Equal(t, "hidden\n", string(r.Stdout), "stderr %s", r.Stderr)
	_, err := svc.Exec(context.Background(), ExecRequest{SessionKey: groupKey, AgentID: "a1", Shell: "true", Timeout: 20 * time.Second})
	require.ErrorIs(t, err, errs.ErrResourceExhausted)
	require.ErrorContains(t, err, "could not be measured")
	_, _, err = svc.RecreateReset(context.Background(), groupKey, false)
	require.NoError(t, err)
	r = run(t, svc, ExecRequest{SessionKey: groupKey, AgentID: "a1", Shell: "ls -A | wc -l"})
	require.Equal(t, "0\n", strings.TrimLeft(string(r.Stdout), " "))
}

func TestPruneWorkspacesOnEngine(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	svc, _ := newTestService(t, func(c *Config) { c.Now = clock.Now })
	ctx := context.Background()
	idle := run(t, svc, ExecRequest{SessionKey: "agent:a1:x:idle", Shell: "echo x > f"})
	busy := run(t, svc, ExecRequest{SessionKey: "agent:a1:x:busy", Shell: "echo x > f"})
	idleVol := docker(t, "inspect", "-f", `{{index .Config.Labels "moltbot.sandbox.workspace"}}`, idle.ContainerID)
	busyVol := docker(t, "inspect", "-f", `{{index .Config.Labels "moltbot.sandbox.workspace"}}`, busy.ContainerID)
	foreign := "mbtest-foreign-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	docker(t, "volume", "create", "--label", backend.LabelVolume+"=workspace", foreign)
	t.Cleanup(func() { _ = exec.Command("docker", "volume", "rm", foreign).Run() })

	clock.Add(3 * time.Hour)
	run(t, svc, ExecRequest{SessionKey: "agent:a1:x:busy", Shell: "cat f"})
	removed, err := svc.PruneWorkspaces(ctx, 2*time.Hour)
	require.NoError(t, err)
	require.Equal(t, []string{idleVol}, removed)
	require.Error(t, exec.Command("docker", "volume", "inspect", idleVol).Run())
	require.NoError(t, exec.Command("docker", "volume", "inspect", busyVol).Run())
	require.NoError(t, exec.Command("docker", "volume", "inspect", foreign).Run())
	again := run(t, svc, ExecRequest{SessionKey: "agent:a1:x:idle", Shell: "ls -A"})
	require.Empty(t, string(again.Stdout), "a pruned session starts clean")
}

func TestWarmPoolPairsOnEngine(t *testing.T) {
	svc, _ := newTestService(t, func(c *Config) { c.PoolSize = 1 })
	require.Eventually(t, func() bool { return svc.PoolReady() == 1 }, 20*time.Second, 20*time.Millisecond)
	r, err := svc.Ensure(context.Background(), EnsureRequest{SessionKey: groupKey, AgentID: "a1"})
	require.NoError(t, err)
	require.True(t, r.FromPool)
	out := run(t, svc, ExecRequest{SessionKey: groupKey, AgentID: "a1", Shell: "echo pooled > p && cat p && pwd"})
	require.Equal(t, "pooled\n/workspace\n", string(out.Stdout))
	require.Equal(t, r.Container.ID, out.ContainerID)
	vol := docker(t, "inspect", "-f", `{{index .Config.Labels "moltbot.sandbox.workspace"}}`, out.ContainerID)
	require.Contains(t, vol, "-ws-pool-")
	// The pool's workspace is the session's from now on.
	_, err = svc.Recreate(context.Background(), groupKey, false)
	require.NoError(t, err)
	again := run(t, svc, ExecRequest{SessionKey: groupKey, AgentID: "a1", Shell: "cat p"})
	require.Equal(t, "pooled\n", string(again.Stdout))
}
