package sandbox

import (
	"fmt"
	"sort"
	"strings"
)

// ExplainItem is one setting, its value and why it has it.
type ExplainItem struct{ Name, Value, Why string }

// Explanation is the effective policy for a session.
type Explanation struct {
	Sandboxed   bool
	MainSession bool
	Mode        Mode
	Scope       Scope
	ConfigHash  string
	Items       []ExplainItem
}

// Explain returns the effective policy for a session and the reason for
// every value. It does not touch Docker.
func (s *Service) Explain(sessionKey, agentID string, override *Policy) (Explanation, error) {
	if err := checkKey("session key", sessionKey); err != nil {
		return Explanation{}, err
	}
	p := s.defaults.Merge(override)
	if err := p.Validate(); err != nil {
		return Explanation{}, err
	}
	main := IsMainSession(sessionKey, agentID)
	ex := Explanation{Sandboxed: Sandboxed(p.Mode, main), MainSession: main, Mode: p.Mode, Scope: p.Scope, ConfigHash: p.Hash(s.cfg.User)}
	base := DefaultPolicy()
	src := func(set bool, configured bool) string {
		switch {
		case set:
			// The gateway sends the fields its config sets.
			return "configured (agents.defaults.sandbox)"
		case configured:
			return "sandboxd setting"
		}
		return "default"
	}
	o := override
	if o == nil {
		o = &Policy{}
	}
	c := s.cfg.Defaults
	add := func(name, value, why string) { ex.Items = append(ex.Items, ExplainItem{name, value, why}) }

	sessionWhy := fmt.Sprintf("%q is not agent:<id>:main, so it is non-main (groups, channels and other DMs are non-main)", sessionKey)
	if main {
		sessionWhy = fmt.Sprintf("%q is the agent's main DM session", sessionKey)
	}
	add("session", map[bool]string{true: "main", false: "non-main"}[main], sessionWhy)
	modeWhy := src(o.Mode != ModeUnset, c.Mode != ModeUnset)
	switch {
	case p.Mode == ModeOff:
		modeWhy += "; mode off: nothing is sandboxed"
	case p.Mode == ModeAll:
		modeWhy += "; mode all: every session is sandboxed"
	case main:
		modeWhy += "; mode non-main: the main session runs on the host"
	default:
		modeWhy += "; mode non-main: this non-main session is sandboxed"
	}
	add("mode", p.Mode.String(), modeWhy)
	add("sandboxed", fmt.Sprint(ex.Sandboxed), "from mode and session")
	key, err := scopeKey(p.Scope, sessionKey, agentID)
	if err != nil {
		key = "(" + err.Error() + ")"
	}
	add("scope", p.Scope.String(), src(o.Scope != ScopeUnset, c.Scope != ScopeUnset)+"; container key "+key)
	add("workspaceAccess", p.WorkspaceAccess.String(), src(o.WorkspaceAccess != WorkspaceUnset, c.WorkspaceAccess != WorkspaceUnset))
	if p.WorkspaceAccess != WorkspaceNone {
		add("workspaceDir", p.WorkspaceDir+" -> /workspace", src(o.WorkspaceDir != "", c.WorkspaceDir != ""))
	}
	add("docker.image", p.Image, src(o.Image != "", c.Image != ""))
	add("docker.network", p.Network, src(o.Network != "", c.Network != "")+"; host and container: networks are refused")
	add("docker.memory", fmt.Sprintf("%d", p.MemoryBytes), src(o.MemoryBytes != 0, c.MemoryBytes != 0))
	add("docker.memorySwap", fmt.Sprintf("%d", p.MemoryBytes), "fixed: equal to memory, so no swap")
	add("docker.cpus", fmt.Sprintf("%g", p.CPUs), src(o.CPUs != 0, c.CPUs != 0))
	add("docker.pidsLimit", fmt.Sprintf("%d", p.PidsLimit), src(o.PidsLimit != 0, c.PidsLimit != 0)+"; stops fork bombs")
	add("docker.tmpfs", fmt.Sprintf("/tmp %d, /var/tmp %d, /run 4194304 (noexec,nosuid,nodev)", p.TmpfsBytes, max(p.TmpfsBytes/4, 1<<20)),
		src(o.TmpfsBytes != 0, c.TmpfsBytes != 0)+"; sized because tmpfs pages count against memory")
	add("docker.user", s.cfg.User, "fixed by sandboxd (non-root uid:gid); never chosen by a caller")
	envKeys := make([]string, 0, len(p.Env))
	for k := range p.Env {
		envKeys = append(envKeys, k)
	}
	sort.Strings(envKeys)
	add("docker.env", strings.Join(envKeys, ","), src(o.Env != nil, c.Env != nil)+"; names only, values are not shown")
	add("docker.binds", strings.Join(p.Binds, ","), src(o.Binds != nil, c.Binds != nil)+"; the Docker socket, / and host system trees are refused")
	for _, f := range []ExplainItem{
		{"readOnlyRoot", "true", "fixed: the image cannot be modified"},
		{"capDrop", "ALL", "fixed: no Linux capabilities"},
		{"noNewPrivileges", "true", "fixed: setuid binaries cannot raise privileges"},
		{"seccomp", "default", "fixed: Docker's default seccomp profile"},
		{"dockerSocket", "absent", "fixed: only sandboxd holds the Docker socket"},
		{"ulimits", fmt.Sprintf("nofile=%d nproc=%d", s.cfg.Nofile, s.cfg.Nproc), "fixed by sandboxd"},
		{"logDriver", "none", "fixed: command output is not logged by Docker"},
		{"privileged", "false", "fixed: never privileged"},
	} {
		ex.Items = append(ex.Items, f)
	}
	_ = base
	return ex, nil
}
