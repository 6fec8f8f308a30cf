//go:build integration

package sandbox

import (
	"context"
	"encoding/json"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/services/errs"
)

const ownerKey = "agent:a1:main"

// TestMainProfileHostConfig creates the owner's main-profile sandbox on the
// real engine and checks the HostConfig Docker applied: egress network,
// still non-root, no capabilities, no new privileges, read-only root, sized
// tmpfs, the owner's volume rw at /workspace and nothing else mounted.
func TestMainProfileHostConfig(t *testing.T) {
	svc, _ := newTestService(t, nil)
	ownerVol := svc.volumeFor("agent:a1", KindAgentWorkspace)
	ctx := context.Background()
	r, err := svc.Exec(ctx, ExecRequest{SessionKey: ownerKey, AgentID: "a1", Profile: ProfileMain, OwnerWorkspace: true,
		Shell: "id -u; pwd; echo kept > /workspace/note && cat /workspace/note"})
	require.NoError(t, err)
	require.Equal(t, "10001\n/workspace\nkept\n", string(r.Stdout), "stderr: %s", r.Stderr)

	var ins []struct {
		HostConfig struct {
			NetworkMode    string
			CapDrop        []string
			CapAdd         []string
			SecurityOpt    []string
			ReadonlyRootfs bool
			Privileged     bool
			Binds          []string
			Tmpfs          map[string]string
			Memory         int64
			MemorySwap     int64
		}
		Config struct {
			User   string
			Labels map[string]string
		}
		Mounts []struct {
			Type, Name, Source, Destination string
			RW                              bool
		}
	}
	require.NoError(t, json.Unmarshal([]byte(docker(t, "inspect", r.ContainerID)), &ins))
	require.Len(t, ins, 1)
	hc := ins[0].HostConfig
	require.Equal(t, "bridge", hc.NetworkMode)
	require.Equal(t, []string{"ALL"}, hc.CapDrop)
	require.Empty(t, hc.CapAdd)
	require.Contains(t, hc.SecurityOpt, "no-new-privileges:true")
	require.True(t, hc.ReadonlyRootfs)
	require.False(t, hc.Privileged)
	require.Empty(t, hc.Binds)
	require.Contains(t, hc.Tmpfs["/tmp"], "size=")
	require.Equal(t, hc.Memory, hc.MemorySwap)
	require.Equal(t, "10001:10001", ins[0].Config.User)
	require.Equal(t, "main", ins[0].Config.Labels["moltbot.sandbox.profile"])
	var vols []string
	for _, m := range ins[0].Mounts {
		if m.Type == "tmpfs" {
			continue
		}
		vols = append(vols, m.Type+":"+m.Name+":"+m.Destination)
		require.True(t, m.RW)
	}
	require.Equal(t, []string{"volume:" + ownerVol + ":/workspace"}, vols, "only the agent's workspace volume")
	require.Equal(t, "1 agent-workspace", docker(t, "volume", "inspect", "-f", `{{index .Labels "moltbot.sandbox"}} {{index .Labels "moltbot.sandbox.volume"}}`, ownerVol))

	// A hardened session never shares the owner's container or volume.
	h, err := svc.Exec(ctx, ExecRequest{SessionKey: "agent:a1:telegram:dm:42", AgentID: "a1", Shell: "ls /workspace 2>&1; true"})
	require.NoError(t, err)
	require.NotEqual(t, r.ContainerID, h.ContainerID)
	require.NotContains(t, string(h.Stdout), "note")
	require.Equal(t, "none", docker(t, "inspect", "-f", "{{.HostConfig.NetworkMode}}", h.ContainerID))

	// Mode off for a non-owner: main network and limits, never the workspace,
	// and even under scope shared never the owner's container.
	sp := testPolicy()
	sp.Scope = ScopeShared
	o, err := svc.Exec(ctx, ExecRequest{SessionKey: "agent:a1:telegram:dm:43", AgentID: "a1", Profile: ProfileMain, Policy: &sp,
		Shell: "ls /workspace 2>&1; true"})
	require.NoError(t, err)
	require.NotEqual(t, r.ContainerID, o.ContainerID)
	require.NotContains(t, string(o.Stdout), "note")
	require.Equal(t, "bridge", docker(t, "inspect", "-f", "{{.HostConfig.NetworkMode}}", o.ContainerID))
	require.NotContains(t, docker(t, "inspect", "-f", "{{json .Mounts}}", o.ContainerID), ownerVol)
}

// TestOwnerVolumeNotAdopted: a volume of the owner workspace's name that
// sandboxd did not create (no marker label) is refused, never mounted.
func TestOwnerVolumeNotAdopted(t *testing.T) {
	svc, _ := newTestService(t, nil)
	vol := svc.volumeFor("agent:a1", KindAgentWorkspace)
	docker(t, "volume", "create", vol)
	t.Cleanup(func() { _ = exec.Command("docker", "volume", "rm", vol).Run() })
	_, err := svc.Exec(context.Background(), ExecRequest{SessionKey: ownerKey, Profile: ProfileMain, OwnerWorkspace: true, Argv: []string{"true"}})
	require.ErrorIs(t, err, errs.ErrFailedPrecondition)
	require.ErrorContains(t, err, "not created by sandboxd")
}
