// Package backend runs sandbox containers. Backend is the seam of DESIGN 7b:
// Docker now (Docker below), Kubernetes pods later. Callers build the Spec;
// nothing in it comes from a request unvalidated.
package backend

import (
	"context"
	"errors"
	"time"
)

// Label keys put on every sandbox container. LabelMarker marks it as ours.
const (
	LabelMarker     = "moltbot.sandbox"
	LabelInstance   = "moltbot.sandbox.instance"
	LabelSession    = "moltbot.sandbox.session"
	LabelAgentID    = "moltbot.sandbox.agent-id"
	LabelScope      = "moltbot.sandbox.scope"
	LabelScopeKey   = "moltbot.sandbox.scope-key"
	LabelConfigHash = "moltbot.sandbox.config-hash"
	LabelCreatedAt  = "moltbot.sandbox.created-at"
	LabelPool       = "moltbot.sandbox.pool"
	LabelProfile    = "moltbot.sandbox.profile"
	// LabelVolume marks a named volume sandboxd created; its value says
	// which kind: "workspace" (a session's, or a scope's) or
	// "agent-workspace" (an agent's own, the owner's main session's).
	LabelVolume = "moltbot.sandbox.volume"
	// LabelAgentPath is set by the sandbox image: where its exec agent lives.
	LabelAgentPath = "moltbot.sandbox.agent"
)

// Spec is a hardened sandbox container. Hardening that is not a knob
// (read-only root, cap-drop ALL, no-new-privileges, no log driver, ...) is
// applied by the backend and cannot be turned off here.
type Spec struct {
	Name        string
	Image       string
	User        string // "uid:gid", always both: a bare uid runs with gid 0
	Env         []string
	Labels      map[string]string
	MemoryBytes int64 // memory-swap is set equal: no swap
	NanoCPUs    int64
	PidsLimit   int64
	TmpfsBytes  int64
	Nofile      int64
	// Nproc is RLIMIT_NPROC, which counts every task of the uid on the host,
	// across all sandboxes; the per-container bound is PidsLimit.
	Nproc int64
	// Fsize is RLIMIT_FSIZE in bytes (0: unlimited): no single file the
	// sandbox writes grows past it (the workspace quota).
	Fsize   int64
	Network string   // "none" unless the policy says otherwise
	Binds   []string // "src:dst:ro|rw", validated by the caller
	// Volumes are named volumes, created (labelled) when missing.
	Volumes    []Volume
	WorkingDir string
}

// Volume is a named volume for a Spec. An existing volume without
// sandboxd's marker label is refused, never adopted.
type Volume struct {
	Name     string
	Target   string
	ReadOnly bool
	Labels   map[string]string
}

// Container is what the backend knows about one sandbox container.
type Container struct {
	ID      string
	Name    string
	Image   string
	State   string
	Running bool
	Labels  map[string]string
	// Agent is true when the image carries the exec agent.
	Agent bool
}

// ExecSpec is one command. Argv is already resolved (a shell line arrives
// here as ["/bin/sh", "-c", line]).
type ExecSpec struct {
	Argv      []string
	Stdin     []byte
	Timeout   time.Duration
	OutputCap int
	// ForceDockerExec skips the agent (benchmarks and tests of the fallback).
	ForceDockerExec bool
	// Measure, when set, is a directory whose disk usage is measured after
	// the command (as DiskUsage does) and returned with its result.
	Measure string
}

// KillCause says why a command did not end on its own.
type KillCause int

// Kill causes.
const (
	CauseNone KillCause = iota
	CauseTimeout
	CauseOOM
	CausePidsLimit
	CauseSignal
)

func (c KillCause) String() string {
	switch c {
	case CauseNone:
		return "none"
	case CauseTimeout:
		return "timeout"
	case CauseOOM:
		return "oom"
	case CausePidsLimit:
		return "pids-limit"
	case CauseSignal:
		return "signal"
	}
	return "unknown"
}

// Exec paths.
const (
	PathAgent      = "agent"
	PathDockerExec = "docker-exec"
)

// ExecResult is the outcome of a command.
type ExecResult struct {
	ExitCode  int
	Stdout    []byte
	Stderr    []byte
	Truncated bool
	Cause     KillCause
	Duration  time.Duration
	Path      string
	// Usage is the disk usage under ExecSpec.Measure after the command;
	// UsageErr is set instead when it could not be measured.
	Usage    int64
	UsageErr error
}

// ErrContainerGone means the container stopped or its agent broke; the
// caller should recreate it.
var ErrContainerGone = errors.New("sandbox container is gone")

// ErrNotSent accompanies ErrContainerGone when the command never reached the
// container, so running it in a fresh one is safe.
var ErrNotSent = errors.New("command not sent")

// Backend runs sandbox containers.
type Backend interface {
	// Ping checks the engine and returns its API version.
	Ping(ctx context.Context) (string, error)
	ImagePresent(ctx context.Context, image string) (bool, error)
	// Create creates and starts a container and waits until it can exec.
	Create(ctx context.Context, spec Spec) (Container, error)
	Exec(ctx context.Context, id string, spec ExecSpec) (ExecResult, error)
	// List returns this instance's sandbox containers (marker label), any state.
	List(ctx context.Context) ([]Container, error)
	Inspect(ctx context.Context, id string) (Container, error)
	Rename(ctx context.Context, id, name string) error
	// Remove kills and removes; a missing container is not an error.
	// Named volumes stay.
	Remove(ctx context.Context, id string) error
	// DiskUsage is the disk space used under path in container id, measured
	// inside the container without following symlinks or leaving the
	// filesystem (as du -skx counts). An unreadable entry is an error, never a
	// smaller figure.
	DiskUsage(ctx context.Context, id, path string) (int64, error)
	// ListVolumes returns this instance's sandbox volumes (marker label).
	ListVolumes(ctx context.Context) ([]VolumeInfo, error)
	// RemoveVolume removes a sandbox volume; a missing one is not an
	// error, one still mounted by a container is ErrFailedPrecondition.
	RemoveVolume(ctx context.Context, name string) error
	Close() error
}

// VolumeInfo is what the backend knows about one sandbox volume.
type VolumeInfo struct {
	Name   string
	Labels map[string]string
}
