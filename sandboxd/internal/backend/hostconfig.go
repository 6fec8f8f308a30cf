package backend

import (
	"fmt"
	"maps"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"

	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// Hardening that is not a knob. Build applies it to every sandbox container;
// a Spec cannot turn any of it off.
const (
	// SecurityOptNoNewPrivileges stops setuid binaries raising privileges.
	SecurityOptNoNewPrivileges = "no-new-privileges:true"
	// IpcPrivate: no shared IPC namespace with the host or other containers.
	IpcPrivate = "private"
	// LogDriverNone: command output never lands in Docker's logs.
	LogDriverNone = "none"
	// RunTmpfsBytes sizes /run.
	RunTmpfsBytes = 4 << 20
)

// TmpfsOpts is the option string of every tmpfs: noexec, nosuid, nodev and
// sized (an unsized tmpfs fills the memory limit and, once full, OOM-kills
// every later command).
func TmpfsOpts(size int64) string {
	return "rw,noexec,nosuid,nodev,mode=1777,size=" + strconv.FormatInt(size, 10)
}

// Build turns a Spec into the engine's container and host config. It is
// pure (no engine call), so every hardening field is unit-tested here and
// the Docker backend only sends what Build returns. agent says whether the
// image carries the exec agent; instance, when set, is stamped as
// LabelInstance.
func Build(s Spec, agent bool, instance string) (*container.Config, *container.HostConfig, error) {
	if u := strings.Split(s.User, ":"); len(u) != 2 || u[0] == "" || u[1] == "" {
		return nil, nil, fmt.Errorf("sandbox user %q must be uid:gid: %w", s.User, errs.ErrInvalidArgument)
	}
	if s.MemoryBytes <= 0 || s.PidsLimit <= 0 || s.NanoCPUs <= 0 || s.TmpfsBytes <= 0 || s.Nofile <= 0 || s.Nproc <= 0 {
		return nil, nil, fmt.Errorf("sandbox spec needs positive memory, cpus, pids limit, tmpfs size, nofile and nproc: %w", errs.ErrInvalidArgument)
	}
	if err := config.CheckNetworkName(s.Network); err != nil {
		// The config validator's rule, again here: a caller bug never
		// reaches the engine as a shared network namespace.
		return nil, nil, fmt.Errorf("sandbox network: %v: %w", err, errs.ErrInvalidArgument)
	}
	labels := maps.Clone(s.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[LabelMarker] = "1"
	if instance != "" {
		labels[LabelInstance] = instance
	}
	cfg := &container.Config{
		User:       s.User,
		Env:        s.Env,
		Labels:     labels,
		WorkingDir: s.WorkingDir,
		StopSignal: "SIGKILL",
		Tty:        false,
	}
	if agent {
		// The agent speaks over PID 1's stdin/stdout; stdin must stay open
		// across attaches.
		cfg.OpenStdin, cfg.StdinOnce = true, false
		cfg.AttachStdin, cfg.AttachStdout, cfg.AttachStderr = true, true, true
	} else {
		cfg.Entrypoint = []string{"sleep"}
		cfg.Cmd = []string{"2147483647"}
	}
	useInit := !agent // without the agent, docker-init reaps exec'd orphans
	pids := s.PidsLimit
	ulimits := []*container.Ulimit{
		{Name: "nofile", Soft: s.Nofile, Hard: s.Nofile},
		{Name: "nproc", Soft: s.Nproc, Hard: s.Nproc},
	}
	if s.Fsize > 0 {
		ulimits = append(ulimits, &container.Ulimit{Name: "fsize", Soft: s.Fsize, Hard: s.Fsize})
	}
	mounts := make([]mount.Mount, 0, len(s.Volumes))
	for _, v := range s.Volumes {
		mounts = append(mounts, mount.Mount{Type: mount.TypeVolume, Source: v.Name, Target: v.Target, ReadOnly: v.ReadOnly})
	}
	hc := &container.HostConfig{
		ReadonlyRootfs: true,
		Tmpfs: map[string]string{
			"/tmp":     TmpfsOpts(s.TmpfsBytes),
			"/var/tmp": TmpfsOpts(max(s.TmpfsBytes/4, 1<<20)),
			"/run":     TmpfsOpts(RunTmpfsBytes),
		},
		NetworkMode: container.NetworkMode(s.Network),
		CapDrop:     []string{"ALL"},
		// Docker's default seccomp profile applies because no seccomp=
		// option is given; "seccomp=unconfined" is never set.
		SecurityOpt: []string{SecurityOptNoNewPrivileges},
		IpcMode:     IpcPrivate,
		Init:        &useInit,
		LogConfig:   container.LogConfig{Type: LogDriverNone},
		Binds:       s.Binds,
		Mounts:      mounts,
		Resources: container.Resources{
			Memory:     s.MemoryBytes,
			MemorySwap: s.MemoryBytes, // equal: no swap
			NanoCPUs:   s.NanoCPUs,
			PidsLimit:  &pids,
			Ulimits:    ulimits,
		},
	}
	return cfg, hc, nil
}

// VolumeLabels are the labels of a volume sandboxd creates.
func VolumeLabels(v Volume, instance string) map[string]string {
	labels := maps.Clone(v.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[LabelMarker] = "1"
	if instance != "" {
		labels[LabelInstance] = instance
	}
	return labels
}
