package backend

import (
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/services/errs"
)

// specs of the two profiles as sandboxd builds them: hardened (no network,
// the session's workspace) and main (egress, the owner's agent workspace).
func profileSpecs() map[string]Spec {
	base := Spec{
		Name: "sbx", Image: "moltbot-sandbox:latest", User: "10001:10001", Env: []string{"HOME=/tmp"},
		Labels: map[string]string{LabelSession: "agent:a1:x"}, MemoryBytes: 256 << 20, NanoCPUs: 1.5e9,
		PidsLimit: 128, TmpfsBytes: 64 << 20, Nofile: 1024, Nproc: 8192, Fsize: 512 << 20, WorkingDir: "/workspace",
	}
	hardened := base
	hardened.Network = "none"
	hardened.Volumes = []Volume{{Name: "sbx-ws-1", Target: "/workspace"}, {Name: "sbx-agent-a1", Target: "/agent", ReadOnly: true}}
	main := base
	main.Network = "bridge"
	main.Volumes = []Volume{{Name: "sbx-agent-a1", Target: "/workspace"}}
	return map[string]Spec{"hardened": hardened, "main": main}
}

// TestBuildHardening checks every hardening field Build sets, for both
// profiles. Each check names the field so a failing mutant is obvious.
func TestBuildHardening(t *testing.T) {
	for profile, spec := range profileSpecs() {
		for _, agent := range []bool{true, false} {
			cfg, hc, err := Build(spec, agent, "inst-1")
			require.NoError(t, err)
			checks := []struct {
				field string
				ok    bool
			}{
				{"CapDrop ALL", len(hc.CapDrop) == 1 && hc.CapDrop[0] == "ALL"},
				{"CapAdd empty", len(hc.CapAdd) == 0},
				{"ReadonlyRootfs", hc.ReadonlyRootfs},
				{"Privileged false", !hc.Privileged},
				{"no-new-privileges", len(hc.SecurityOpt) == 1 && hc.SecurityOpt[0] == "no-new-privileges:true"},
				{"seccomp default (no seccomp= option)", !strings.Contains(strings.Join(hc.SecurityOpt, ","), "seccomp")},
				{"apparmor not unconfined", !strings.Contains(strings.Join(hc.SecurityOpt, ","), "apparmor")},
				{"IpcMode private", hc.IpcMode == "private"},
				{"PidMode own", hc.PidMode == ""},
				{"UTSMode own", hc.UTSMode == ""},
				{"UsernsMode default", hc.UsernsMode == ""},
				{"LogConfig none", hc.LogConfig.Type == "none" && len(hc.LogConfig.Config) == 0},
				{"network as the spec", string(hc.NetworkMode) == spec.Network},
				{"memory", hc.Memory == spec.MemoryBytes},
				{"memory swap == memory (no swap)", hc.MemorySwap == spec.MemoryBytes},
				{"cpus", hc.NanoCPUs == spec.NanoCPUs},
				{"pids limit", hc.PidsLimit != nil && *hc.PidsLimit == spec.PidsLimit},
				{"no devices", len(hc.Devices) == 0 && len(hc.DeviceCgroupRules) == 0},
				{"no published ports", len(hc.PortBindings) == 0 && !hc.PublishAllPorts},
				{"user", cfg.User == "10001:10001"},
				{"stop signal", cfg.StopSignal == "SIGKILL"},
				{"no tty", !cfg.Tty},
				{"working dir", cfg.WorkingDir == "/workspace"},
				{"marker label", cfg.Labels[LabelMarker] == "1"},
				{"instance label", cfg.Labels[LabelInstance] == "inst-1"},
				{"caller label kept", cfg.Labels[LabelSession] == "agent:a1:x"},
				{"init only without agent", hc.Init != nil && *hc.Init == !agent},
				{"agent stdin open", cfg.OpenStdin == agent && !cfg.StdinOnce},
			}
			for _, c := range checks {
				require.True(t, c.ok, "profile %s agent=%v: %s", profile, agent, c.field)
			}
			require.Equal(t, []*container.Ulimit{
				{Name: "nofile", Soft: 1024, Hard: 1024},
				{Name: "nproc", Soft: 8192, Hard: 8192},
				{Name: "fsize", Soft: 512 << 20, Hard: 512 << 20},
			}, hc.Ulimits, "profile %s: ulimits", profile)
			require.Equal(t, map[string]string{
				"/tmp":     "rw,noexec,nosuid,nodev,mode=1777,size=67108864",
				"/var/tmp": "rw,noexec,nosuid,nodev,mode=1777,size=16777216",
				"/run":     "rw,noexec,nosuid,nodev,mode=1777,size=4194304",
			}, hc.Tmpfs, "profile %s: tmpfs options for every mount", profile)
			for target, opts := range hc.Tmpfs {
				o := strings.Split(opts, ",")
				require.Subset(t, o, []string{"noexec", "nosuid", "nodev"}, "profile %s: tmpfs %s", profile, target)
				require.Contains(t, opts, "size=", "profile %s: tmpfs %s unsized", profile, target)
			}
			var want []mount.Mount
			for _, v := range spec.Volumes {
				want = append(want, mount.Mount{Type: mount.TypeVolume, Source: v.Name, Target: v.Target, ReadOnly: v.ReadOnly})
			}
			require.Equal(t, want, hc.Mounts, "profile %s: mounts", profile)
			require.Empty(t, hc.Binds, "profile %s: no host binds", profile)
		}
	}
}

// TestBuildNoFsizeWithoutQuota: a zero Fsize sets no fsize ulimit.
func TestBuildNoFsizeWithoutQuota(t *testing.T) {
	s := profileSpecs()["main"]
	s.Fsize = 0
	_, hc, err := Build(s, true, "")
	require.NoError(t, err)
	for _, u := range hc.Ulimits {
		require.NotEqual(t, "fsize", u.Name)
	}
}

func TestBuildRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Spec)
		want string
	}{
		{"bare uid", func(s *Spec) { s.User = "10001" }, "uid:gid"},
		{"empty user", func(s *Spec) { s.User = "" }, "uid:gid"},
		{"no memory", func(s *Spec) { s.MemoryBytes = 0 }, "positive memory"},
		{"no pids limit", func(s *Spec) { s.PidsLimit = 0 }, "positive memory"},
		{"host network", func(s *Spec) { s.Network = "host" }, "sandbox network"},
		{"container network", func(s *Spec) { s.Network = "container:x" }, "sandbox network"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := profileSpecs()["hardened"]
			tc.edit(&s)
			_, _, err := Build(s, true, "")
			require.ErrorIs(t, err, errs.ErrInvalidArgument)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestVolumeLabels(t *testing.T) {
	l := VolumeLabels(Volume{Labels: map[string]string{LabelVolume: "workspace", LabelMarker: "0"}}, "inst")
	require.Equal(t, map[string]string{LabelVolume: "workspace", LabelMarker: "1", LabelInstance: "inst"}, l)
}
