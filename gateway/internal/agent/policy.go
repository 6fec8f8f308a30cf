package agent

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	sandboxv1 "github.com/moltbot/moltbot-secure/proto/sandbox/v1"
	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// PolicySource returns the current sandbox policy (agents.defaults.sandbox),
// mode included. It is called for every command, so a changed config takes
// effect on the next message: sandboxd recreates the container when the
// policy's hash changed.
type PolicySource func() (*sandboxv1.Policy, error)

// PolicyFromConfig converts a loaded config's sandbox section. Values the
// config validator calls errors are refused here too (fail closed).
func PolicyFromConfig(c *config.Config) (*sandboxv1.Policy, error) {
	for _, p := range config.Errors(c.Validate()) {
		if strings.HasPrefix(p.Path, "agents.defaults.sandbox") || strings.HasPrefix(p.Path, "agents.defaults.workspace") {
			return nil, fmt.Errorf("sandbox config: %s: %w", p.String(), errs.ErrFailedPrecondition)
		}
	}
	// Only the fields the config sets are sent: sandboxd fills in its
	// defaults (same result, same hash) and its explain can tell them apart.
	has := func(k string) bool { _, err := c.Get("agents.defaults.sandbox." + k); return err == nil }
	d := c.View().Agents.Sandbox.Docker
	p := &sandboxv1.Policy{}
	if has("docker.image") {
		p.Image = d.Image
	}
	if has("docker.network") {
		p.Network = d.Network
	}
	if has("docker.cpus") {
		p.Cpus = d.CPUs
	}
	if has("docker.pidsLimit") {
		p.PidsLimit = d.PidsLimit
	}
	// docker.user is not passed on: sandboxd runs every sandbox as its own
	// fixed non-root uid:gid, never one chosen by a caller.
	if has("docker.env") {
		p.Env = d.Env
		if p.Env == nil {
			p.Env = map[string]string{}
		}
	}
	if has("docker.binds") {
		p.Binds = d.Binds
	}
	if has("main.network") {
		p.MainNetwork = c.View().Agents.Sandbox.MainNetwork
	}
	s := c.View().Agents.Sandbox
	if has("mode") {
		p.Mode = ParseMode(s.Mode)
	}
	switch {
	case !has("scope"):
	case s.Scope == "agent":
		p.Scope = sandboxv1.Scope_SCOPE_AGENT
	case s.Scope == "shared":
		p.Scope = sandboxv1.Scope_SCOPE_SHARED
	default:
		p.Scope = sandboxv1.Scope_SCOPE_SESSION
	}
	switch {
	case !has("workspaceAccess"):
	case s.WorkspaceAccess == "ro":
		p.WorkspaceAccess = sandboxv1.WorkspaceAccess_WORKSPACE_ACCESS_RO
	case s.WorkspaceAccess == "rw":
		p.WorkspaceAccess = sandboxv1.WorkspaceAccess_WORKSPACE_ACCESS_RW
	default:
		p.WorkspaceAccess = sandboxv1.WorkspaceAccess_WORKSPACE_ACCESS_NONE
	}
	if q, err := c.Get("agents.defaults.sandbox.workspaceQuota"); err == nil {
		// Workspaces are sandboxd's volumes; only their quota is configured.
		n, err := config.WorkspaceQuotaValue(q)
		if err != nil {
			return nil, fmt.Errorf("sandbox config: agents.defaults.sandbox.workspaceQuota: %v (examples: 512m, 2g): %w", err, errs.ErrFailedPrecondition)
		}
		p.WorkspaceQuotaBytes = n
	}
	if d.Memory != "" {
		n, err := ParseBytes(d.Memory)
		if err != nil {
			return nil, fmt.Errorf("sandbox config: agents.defaults.sandbox.docker.memory: %v (examples: 512m, 1g, 268435456): %w", err, errs.ErrFailedPrecondition)
		}
		p.MemoryBytes = n
	}
	return p, nil
}

// ParseMode converts agents.defaults.sandbox.mode; anything but off and
// all is non-main, the safe default.
func ParseMode(s string) sandboxv1.Mode {
	switch s {
	case "off":
		return sandboxv1.Mode_MODE_OFF
	case "all":
		return sandboxv1.Mode_MODE_ALL
	}
	return sandboxv1.Mode_MODE_NON_MAIN
}

// ParseBytes reads a Docker-style size (config.ParseBytes: the validator
// and sandboxd parse sizes the same way).
func ParseBytes(s string) (int64, error) { return config.ParseBytes(s) }

// FilePolicySource reads the policy from the config file at path, parsing
// it again only when its modification time or size changed. A missing file
// means the defaults (mode non-main); an unreadable or invalid one refuses
// every command (nothing runs under a policy we could not read).
func FilePolicySource(path string) PolicySource {
	var (
		mu     sync.Mutex
		mtime  time.Time
		size   int64 = -1
		cached *sandboxv1.Policy
		cerr   error
	)
	return func() (*sandboxv1.Policy, error) {
		mu.Lock()
		defer mu.Unlock()
		fi, err := os.Stat(path)
		if errors.Is(err, os.ErrNotExist) {
			return PolicyFromConfig(config.New(path, nil))
		}
		if err != nil {
			return nil, fmt.Errorf("sandbox config: %v: %w", err, errs.ErrFailedPrecondition)
		}
		if cached != nil || cerr != nil {
			if fi.ModTime().Equal(mtime) && fi.Size() == size {
				return cached, cerr
			}
		}
		mtime, size = fi.ModTime(), fi.Size()
		c, err := config.Load(path)
		if err != nil {
			cached, cerr = nil, fmt.Errorf("sandbox config: %v: %w", err, errs.ErrFailedPrecondition)
			return nil, cerr
		}
		cached, cerr = PolicyFromConfig(c)
		return cached, cerr
	}
}
