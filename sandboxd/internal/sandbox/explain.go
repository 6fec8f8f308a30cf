package sandbox

import (
	"fmt"
	"sort"
	"strings"

	"github.com/moltbot/moltbot-secure/services/sessionkey"
)

// ExplainItem is one setting, its value and why it has it.
type ExplainItem struct{ Name, Value, Why string }

// Explanation is the effective policy for a session.
type Explanation struct {
	// Sandboxed is always true: no session runs outside a sandbox.
	Sandboxed      bool
	MainSession    bool
	Profile        Profile
	OwnerWorkspace bool
	Mode           Mode
	Scope          Scope
	ConfigHash     string
	Items          []ExplainItem
}

// Explain returns the effective policy for a session under profile (the
// gateway's choice) and the reason for every value. It does not touch Docker.
func (s *Service) Explain(sessionKey, agentID string, override *Policy, profile Profile, ownerWorkspace bool) (Explanation, error) {
	if err := checkKey("session key", sessionKey); err != nil {
		return Explanation{}, err
	}
	p, err := s.effective(override, profile, ownerWorkspace)
	if err != nil {
		return Explanation{}, err
	}
	main := sessionkey.IsMain(sessionKey, agentID)
	ex := Explanation{Sandboxed: true, MainSession: main, Profile: profile, OwnerWorkspace: ownerWorkspace,
		Mode: p.Mode, Scope: p.Scope, ConfigHash: p.Hash(s.cfg.User, profile, ownerWorkspace)}
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

	sessionWhy := fmt.Sprintf("%q is not agent:<id>:main, so it is non-main (groups, channels and non-owner DMs are non-main)", sessionKey)
	if main {
		sessionWhy = fmt.Sprintf("%q is the agent's main DM session (the owner's own ids only)", sessionKey)
	}
	add("session", map[bool]string{true: "main", false: "non-main"}[main], sessionWhy)
	add("profile", profile.String(), "chosen by the gateway from the mode, the session and whether the sender is an owner")
	wsWhy := "only the owner's main session mounts the agent's workspace rw"
	if ownerWorkspace {
		wsWhy = "the owner's main session: the agent's workspace rw at " + WorkspaceTarget
	}
	add("ownerWorkspace", fmt.Sprint(ownerWorkspace), wsWhy)
	add("mode", p.Mode.String(), src(o.Mode != ModeUnset, c.Mode != ModeUnset))
	add("sandboxed", "true", "the gateway runs no command itself: every session's commands run in a sandbox container")
	key, err := containerKey(p, profile, ownerWorkspace, sessionKey, agentID)
	if err != nil {
		key = "(" + err.Error() + ")"
	}
	add("scope", p.Scope.String(), src(o.Scope != ScopeUnset, c.Scope != ScopeUnset)+"; container key "+key)
	accWhy := src(o.WorkspaceAccess != WorkspaceUnset, c.WorkspaceAccess != WorkspaceUnset)
	if profile == ProfileMain {
		accWhy = "main profile: the session's own workspace (the agent's is the owner's session's alone)"
	}
	add("workspaceAccess", p.WorkspaceAccess.String(), accWhy)
	if err == nil {
		s.explainMounts(add, p, key, sessionKey, agentID, ownerWorkspace)
	}
	add("workspaceQuota", fmt.Sprint(p.WorkspaceQuota), src(o.WorkspaceQuota != 0, c.WorkspaceQuota != 0)+
		"; measured inside the container by its agent (symlinks not followed, one filesystem) after each command and every "+s.cfg.WatchEvery.String()+
		" during one; past it the command is stopped and the next refused; RLIMIT_FSIZE caps any single file at it")
	add("workingDir", WorkspaceTarget, "fixed: commands run in the workspace")
	add("docker.image", p.Image, src(o.Image != "", c.Image != ""))
	if profile == ProfileMain {
		add("docker.network", p.Network, src(o.MainNetwork != "", c.MainNetwork != "")+" (main profile: agents.defaults.sandbox.main.network, default bridge); host and container: networks are refused")
	} else {
		add("docker.network", p.Network, src(o.Network != "", c.Network != "")+"; host and container: networks are refused")
	}
	add("docker.memory", fmt.Sprintf("%d", p.MemoryBytes), src(o.MemoryBytes != 0, c.MemoryBytes != 0))
	add("docker.memorySwap", fmt.Sprintf("%d", p.MemoryBytes), "fixed: equal to memory, so no swap")
	add("docker.cpus", fmt.Sprintf("%g", p.CPUs), src(o.CPUs != 0, c.CPUs != 0))
	add("docker.pidsLimit", fmt.Sprintf("%d", p.PidsLimit), src(o.PidsLimit != 0, c.PidsLimit != 0)+"; stops fork bombs")
	add("docker.tmpfs", fmt.Sprintf("/tmp %d, /var/tmp %d, /run 4194304 (noexec,nosuid,nodev)", p.TmpfsBytes, max(p.TmpfsBytes/4, 1<<20)),
		src(o.TmpfsBytes != 0, c.TmpfsBytes != 0)+"; sized because tmpfs pages count against memory")
	for _, m := range []struct {
		target string
		size   int64
	}{{"/tmp", p.TmpfsBytes}, {"/var/tmp", max(p.TmpfsBytes/4, 1<<20)}, {"/run", 4 << 20}} {
		add("mount "+m.target, fmt.Sprintf("tmpfs %d bytes, noexec,nosuid,nodev", m.size), "scratch space, gone with the container; sized, never executable")
	}
	for _, b := range p.Binds {
		nb, _ := normalizeBind(b)
		add("mount "+strings.Split(nb, ":")[1], "bind "+nb, src(o.Binds != nil, c.Binds != nil)+" (agents.defaults.sandbox.docker.binds)")
	}
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
		{"serviceState", "absent", "fixed: no service's state, keys or PKI is mounted (main-profile binds of them are refused)"},
		{"ulimits", fmt.Sprintf("nofile=%d nproc=%d", s.cfg.Nofile, s.cfg.Nproc), "fixed by sandboxd"},
		{"logDriver", "none", "fixed: command output is not logged by Docker"},
		{"privileged", "false", "fixed: never privileged"},
	} {
		ex.Items = append(ex.Items, f)
	}
	_ = base
	return ex, nil
}

// explainMounts adds the workspace mounts and why each is there.
func (s *Service) explainMounts(add func(name, value, why string), p Policy, key, sessionKey, agentID string, owner bool) {
	l, err := s.layoutFor(p, key, sessionKey, agentID, owner)
	if err != nil {
		add("mount "+WorkspaceTarget, "(none)", err.Error())
		return
	}
	var why string
	switch {
	case owner:
		why = "the owner's main session: the agent's workspace (agent " + strings.TrimPrefix(l.wsKey, "agent:") + ") read-write"
	case l.kind == KindAgentWorkspace:
		why = "workspaceAccess rw: the agent's workspace read-write, shared with the owner's main session (the audit warns for non-main sessions)"
	default:
		switch p.Scope {
		case ScopeSession:
			why = "the session's own workspace (scope session: no other session sees it)"
		case ScopeAgent:
			why = "the workspace of every session of agent " + agentIDOf(sessionKey, agentID) + " (scope agent: they share it)"
		default:
			why = "one workspace shared by every session (scope shared)"
		}
	}
	add("mount "+WorkspaceTarget, "volume "+l.ws.Name+" rw", why+"; a named volume kept across recreate, config changes and idle pruning")
	if l.agent != nil {
		add("mount "+AgentTarget, "volume "+l.agent.Name+" ro", "workspaceAccess ro: the agent's workspace, read-only")
	}
}
