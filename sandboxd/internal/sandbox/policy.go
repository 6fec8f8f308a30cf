// Package sandbox is sandboxd's domain: which container serves a session,
// with which hardened policy, and the commands run in it. It never imports
// gRPC; errors are errs classes wrapped with context.
package sandbox

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// Mode says which sessions are sandboxed.
type Mode int

// Modes.
const (
	ModeUnset Mode = iota
	ModeOff
	ModeNonMain
	ModeAll
)

func (m Mode) String() string {
	return [...]string{"unset", "off", "non-main", "all"}[min(max(int(m), 0), 3)]
}

// Scope says how sessions share containers.
type Scope int

// Scopes.
const (
	ScopeUnset Scope = iota
	ScopeSession
	ScopeAgent
	ScopeShared
)

func (s Scope) String() string {
	return [...]string{"unset", "session", "agent", "shared"}[min(max(int(s), 0), 3)]
}

// WorkspaceAccess is how the agent workspace is mounted.
type WorkspaceAccess int

// Workspace access levels.
const (
	WorkspaceUnset WorkspaceAccess = iota
	WorkspaceNone
	WorkspaceRO
	WorkspaceRW
)

func (w WorkspaceAccess) String() string {
	return [...]string{"unset", "none", "ro", "rw"}[min(max(int(w), 0), 3)]
}

// Policy is agents.defaults.sandbox. In a request, zero fields mean "use
// the configured default".
type Policy struct {
	Mode            Mode
	Scope           Scope
	WorkspaceAccess WorkspaceAccess
	Image           string
	Network         string
	MemoryBytes     int64
	CPUs            float64
	PidsLimit       int64
	Env             map[string]string
	Binds           []string
	TmpfsBytes      int64
	// WorkspaceQuota bounds the workspace mounted at /workspace.
	WorkspaceQuota int64
	// MainNetwork is the main profile's network ("" = DefaultMainNetwork).
	MainNetwork string
}

// Defaults used when the config leaves a field empty.
const (
	DefaultImage       = "moltbot-sandbox:latest"
	DefaultNetwork     = "none"
	DefaultMemoryBytes = 512 << 20
	DefaultCPUs        = 1.0
	DefaultPidsLimit   = 128
	DefaultTmpfsBytes  = 64 << 20
)

// DefaultPolicy is the policy with nothing configured.
func DefaultPolicy() Policy {
	return Policy{Mode: ModeNonMain, Scope: ScopeSession, WorkspaceAccess: WorkspaceNone, Image: DefaultImage,
		Network: DefaultNetwork, MemoryBytes: DefaultMemoryBytes, CPUs: DefaultCPUs, PidsLimit: DefaultPidsLimit,
		TmpfsBytes: DefaultTmpfsBytes, WorkspaceQuota: config.DefaultWorkspaceQuota}
}

// Merge returns p with every non-zero field of o applied.
func (p Policy) Merge(o *Policy) Policy {
	if o == nil {
		return p
	}
	if o.Mode != ModeUnset {
		p.Mode = o.Mode
	}
	if o.Scope != ScopeUnset {
		p.Scope = o.Scope
	}
	if o.WorkspaceAccess != WorkspaceUnset {
		p.WorkspaceAccess = o.WorkspaceAccess
	}
	if o.Image != "" {
		p.Image = o.Image
	}
	if o.Network != "" {
		p.Network = o.Network
	}
	if o.MemoryBytes != 0 {
		p.MemoryBytes = o.MemoryBytes
	}
	if o.CPUs != 0 {
		p.CPUs = o.CPUs
	}
	if o.PidsLimit != 0 {
		p.PidsLimit = o.PidsLimit
	}
	if o.Env != nil {
		p.Env = o.Env
	}
	if o.Binds != nil {
		p.Binds = o.Binds
	}
	if o.WorkspaceQuota != 0 {
		p.WorkspaceQuota = o.WorkspaceQuota
	}
	if o.TmpfsBytes != 0 {
		p.TmpfsBytes = o.TmpfsBytes
	}
	if o.MainNetwork != "" {
		p.MainNetwork = o.MainNetwork
	}
	return p
}

func invalid(field, format string, a ...any) error {
	return fmt.Errorf("sandbox policy %s: %s: %w", field, fmt.Sprintf(format, a...), errs.ErrInvalidArgument)
}

// Validate checks a merged policy. Dangerous values are refused, not warned about.
func (p Policy) Validate() error {
	if p.Mode < ModeOff || p.Mode > ModeAll {
		return invalid("mode", "%d is not off, non-main or all", p.Mode)
	}
	if p.Scope < ScopeSession || p.Scope > ScopeShared {
		return invalid("scope", "%d is not session, agent or shared", p.Scope)
	}
	if p.WorkspaceAccess < WorkspaceNone || p.WorkspaceAccess > WorkspaceRW {
		return invalid("workspaceAccess", "%d is not none, ro or rw", p.WorkspaceAccess)
	}
	if p.Image == "" || strings.ContainsAny(p.Image, " \t\n\x00") {
		return invalid("docker.image", "%q is not an image reference", p.Image)
	}
	// Network, env and resource rules are the config validator's
	// (config.Check*): a value `config set` accepts is one sandboxd runs.
	if err := config.CheckNetworkName(p.Network); err != nil {
		return invalid("docker.network", `%v; use "none"`, err)
	}
	if n := p.MainNetwork; n != "" {
		if err := config.CheckNetworkName(n); err != nil {
			return invalid("main.network", `%v; use "bridge" (default) or "none"`, err)
		}
	}
	if err := config.CheckMemoryBytes(p.MemoryBytes); err != nil {
		return invalid("docker.memory", "%v", err)
	}
	if err := config.CheckCPUs(p.CPUs); err != nil {
		return invalid("docker.cpus", "%v", err)
	}
	if err := config.CheckPidsLimit(p.PidsLimit); err != nil {
		return invalid("docker.pidsLimit", "%v", err)
	}
	if p.TmpfsBytes < 1<<20 || p.TmpfsBytes > p.MemoryBytes/2 {
		return invalid("docker.tmpfs", "%d bytes outside 1 MiB..memory/2 (tmpfs pages count against the memory limit)", p.TmpfsBytes)
	}
	if err := config.CheckSandboxEnv(p.Env); err != nil {
		return invalid("docker.env", "%v", err)
	}
	for _, b := range p.Binds {
		if _, err := normalizeBind(b); err != nil {
			return err
		}
	}
	if err := config.CheckWorkspaceQuota(p.WorkspaceQuota); err != nil {
		return invalid("workspaceQuota", "%v", err)
	}
	return nil
}

func checkBindSource(src, field string) error {
	if err := config.CheckBindSource(src); err != nil {
		return invalid(field, "%v", err)
	}
	return nil
}

// normalizeBind is config.NormalizeBind (the validator's rule) as a policy error.
func normalizeBind(b string) (string, error) {
	n, err := config.NormalizeBind(b)
	if err != nil {
		return "", invalid("docker.binds", "%v", err)
	}
	return n, nil
}

// hardeningVersion changes when the fixed flags or the agent protocol
// change, so existing containers get recreated with the new ones.
// 2: workspaces are volumes, RLIMIT_FSIZE. 3: the agent measures the
// workspace (Exec.Measure, Usage requests): an older agent cannot read them.
const hardeningVersion = "3"

// Hash is the config hash of the container-relevant part of p (mode and
// scope decide who uses a container, not what it is). profile and
// ownerWorkspace are part of it, so a container built for one is never
// reused for another.
func (p Policy) Hash(user string, profile Profile, ownerWorkspace bool) string {
	env := make([]string, 0, len(p.Env))
	for k, v := range p.Env {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	b, _ := json.Marshal(struct {
		V, Image, Network, User    string
		Memory, Pids, Tmpfs, Quota int64
		CPUs                       float64
		Env, Binds                 []string
		Workspace                  int
		Profile                    string `json:",omitempty"`
		OwnerWorkspace             bool   `json:",omitempty"`
	}{hardeningVersion, p.Image, p.Network, user, p.MemoryBytes, p.PidsLimit, p.TmpfsBytes, p.WorkspaceQuota,
		p.CPUs, env, p.Binds, int(p.WorkspaceAccess), map[bool]string{true: "main"}[profile == ProfileMain], ownerWorkspace})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}
