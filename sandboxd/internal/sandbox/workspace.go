package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/moltbot/moltbot-secure/sandboxd/internal/backend"
	"github.com/moltbot/moltbot-secure/services/atomicfile"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// Workspaces are named Docker volumes (sandboxd runs in a container, so a
// host path is not an option, and engine API 1.41 has no volume subpaths).
// They outlive containers: a config-hash change, idle pruning and
// `sandbox recreate` replace the container and mount the same volume.
const (
	// WorkspaceTarget is where the writable workspace is mounted; commands
	// run there.
	WorkspaceTarget = "/workspace"
	// AgentTarget is where workspaceAccess ro mounts the agent's workspace.
	AgentTarget = "/agent"
	// KindWorkspace is a session's (or its scope's) own workspace.
	KindWorkspace = "workspace"
	// KindAgentWorkspace is an agent's workspace: the owner's main session
	// mounts it rw, workspaceAccess ro at /agent and rw at /workspace.
	KindAgentWorkspace = "agent-workspace"
	// LabelWorkspace on a container names the volume at /workspace.
	LabelWorkspace = "moltbot.sandbox.workspace"
)

// wsEntry is one workspace in the index. The index maps a workspace key to
// its volume (a warm-pool volume is named before its session is known, and
// volume labels cannot change) and keeps usage and last use across
// restarts.
type wsEntry struct {
	Volume   string    `json:"volume"`
	Key      string    `json:"key"`
	Kind     string    `json:"kind"`
	Session  string    `json:"session,omitempty"`
	Agent    string    `json:"agent,omitempty"`
	Scope    string    `json:"scope,omitempty"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"lastUsed"`
	// Usage is bytes, -1 when the last measurement failed (counted as over
	// the quota: a workspace that cannot be measured is not assumed small).
	Usage    int64 `json:"usage"`
	Measured bool  `json:"measured"`
	Quota    int64 `json:"quota,omitempty"`
}

type wsFile struct {
	Version    int        `json:"version"`
	Workspaces []*wsEntry `json:"workspaces"`
}

// layout is the volumes of one container.
type layout struct {
	ws    backend.Volume // rw at /workspace
	wsKey string
	kind  string
	agent *backend.Volume // ro at /agent (workspaceAccess ro)
}

func (l layout) volumes() []backend.Volume {
	v := []backend.Volume{l.ws}
	if l.agent != nil {
		v = append(v, *l.agent)
	}
	return v
}

// agentIDOf is the agent id, from the session key (agent:<id>:...) when
// not given.
func agentIDOf(sessionKey, agentID string) string {
	if agentID != "" {
		return agentID
	}
	if p := strings.Split(sessionKey, ":"); len(p) >= 2 && p[0] == "agent" {
		return p[1]
	}
	return ""
}

// volumeFor is the volume of a workspace key: the index's, else the
// deterministic name a new one gets.
func (s *Service) volumeFor(key, kind string) string {
	s.mu.Lock()
	e := s.ws[key]
	s.mu.Unlock()
	if e != nil {
		return e.Volume
	}
	if kind == KindAgentWorkspace {
		return s.cfg.NamePrefix + "-agent-" + nameHash(key)
	}
	return s.cfg.NamePrefix + "-ws-" + nameHash(key)
}

// layoutFor decides the mounts: workspaceAccess none gives the session's
// own workspace rw at /workspace; ro adds the agent's workspace ro at
// /agent; rw mounts the agent's workspace rw at /workspace, as does the
// owner's main session. key is the container key: the workspace is shared
// exactly as the container is (scope session, agent or shared, and never
// across profiles).
func (s *Service) layoutFor(p Policy, key, sessionKey, agentID string, owner bool) (layout, error) {
	agentWS := func(target string, ro bool) (backend.Volume, string, error) {
		id := agentIDOf(sessionKey, agentID)
		if id == "" {
			return backend.Volume{}, "", fmt.Errorf("an agent id is required to mount the agent's workspace (session key agent:<id>:... or agent_id): %w", errs.ErrInvalidArgument)
		}
		k := "agent:" + id
		return backend.Volume{Name: s.volumeFor(k, KindAgentWorkspace), Target: target, ReadOnly: ro,
			Labels: map[string]string{backend.LabelVolume: KindAgentWorkspace, backend.LabelAgentID: id, backend.LabelScopeKey: k}}, k, nil
	}
	if owner || p.WorkspaceAccess == WorkspaceRW {
		v, k, err := agentWS(WorkspaceTarget, false)
		return layout{ws: v, wsKey: k, kind: KindAgentWorkspace}, err
	}
	l := layout{wsKey: key, kind: KindWorkspace, ws: backend.Volume{Name: s.volumeFor(key, KindWorkspace), Target: WorkspaceTarget,
		Labels: map[string]string{backend.LabelVolume: KindWorkspace, backend.LabelScopeKey: key, backend.LabelSession: sessionKey,
			backend.LabelAgentID: agentID, backend.LabelScope: p.Scope.String()}}}
	if p.WorkspaceAccess == WorkspaceRO {
		v, _, err := agentWS(AgentTarget, true)
		if err != nil {
			return layout{}, err
		}
		l.agent = &v
	}
	return l, nil
}

// register puts a container's workspace in the index when it is new.
func (s *Service) register(l layout, sessionKey, agentID string, sc Scope, fresh bool) {
	now := s.cfg.Now()
	s.mu.Lock()
	if s.ws[l.wsKey] != nil {
		s.mu.Unlock()
		return
	}
	e := &wsEntry{Volume: l.ws.Name, Key: l.wsKey, Kind: l.kind, Created: now, LastUsed: now, Measured: fresh}
	if l.kind == KindWorkspace {
		e.Session, e.Agent, e.Scope = sessionKey, agentID, sc.String()
	} else {
		e.Agent = strings.TrimPrefix(l.wsKey, "agent:")
	}
	s.ws[l.wsKey] = e
	s.mu.Unlock()
	s.saveSoon()
}

// saveDelay is how long a new workspace's index entry waits to be saved.
const saveDelay = 200 * time.Millisecond

// saveSoon saves the index saveDelay from now, once for every call in
// between. Off the command's path, and after it: the save's two fsyncs
// stalled the new session's first command on the same filesystem. A crash
// before it lands loses only the link to a workspace just started (it is
// found again by its labels).
func (s *Service) saveSoon() {
	s.mu.Lock()
	if s.savePending {
		s.mu.Unlock()
		return
	}
	s.savePending = true
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTimer(saveDelay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-s.closing:
		}
		s.mu.Lock()
		s.savePending = false
		s.mu.Unlock()
		s.saveIndex()
	}()
}

func (s *Service) entryByVolume(vol string) *wsEntry {
	for _, e := range s.ws {
		if e.Volume == vol {
			return e
		}
	}
	return nil
}

// loadIndex reads the index and reconciles it with the engine's volumes:
// an entry whose volume is gone is dropped, a labelled volume the index
// lacks is added (unmeasured).
func (s *Service) loadIndex(ctx context.Context) error {
	var fileErr error
	if s.cfg.WorkspaceIndex != "" {
		b, err := os.ReadFile(s.cfg.WorkspaceIndex)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			fileErr = fmt.Errorf("read workspace index %s: %w", s.cfg.WorkspaceIndex, err)
		default:
			var f wsFile
			if err := json.Unmarshal(b, &f); err != nil {
				// Never overwritten (nor its backup): the operator restores
				// one of them; until then nothing is written.
				s.mu.Lock()
				s.indexFrozen = true
				s.mu.Unlock()
				return fmt.Errorf("workspace index %s is not valid JSON (%v); restore it from %s.bak or delete it (workspaces are then found by their labels; warm-pool ones lose their session): %w",
					s.cfg.WorkspaceIndex, err, s.cfg.WorkspaceIndex, errs.ErrFailedPrecondition)
			}
			s.mu.Lock()
			for _, e := range f.Workspaces {
				if e != nil && e.Key != "" && e.Volume != "" {
					s.ws[e.Key] = e
				}
			}
			s.mu.Unlock()
		}
	}
	vols, err := s.be.ListVolumes(ctx)
	if err != nil {
		return err
	}
	have := map[string]backend.VolumeInfo{}
	for _, v := range vols {
		have[v.Name] = v
	}
	s.mu.Lock()
	for k, e := range s.ws {
		if _, ok := have[e.Volume]; !ok {
			delete(s.ws, k)
		}
	}
	for _, v := range vols {
		key, kind := v.Labels[backend.LabelScopeKey], v.Labels[backend.LabelVolume]
		if key == "" || (kind != KindWorkspace && kind != KindAgentWorkspace) || s.ws[key] != nil || s.entryByVolume(v.Name) != nil {
			continue
		}
		s.ws[key] = &wsEntry{Volume: v.Name, Key: key, Kind: kind, Session: v.Labels[backend.LabelSession],
			Agent: v.Labels[backend.LabelAgentID], Scope: v.Labels[backend.LabelScope], Created: parseTime(v.Labels[backend.LabelCreatedAt])}
	}
	s.mu.Unlock()
	if fileErr == nil {
		s.saveIndex()
	}
	return fileErr
}

// saveIndex writes the index atomically (keeping a backup). A failed
// write is logged: the volumes and their labels stay the truth.
func (s *Service) saveIndex() {
	if s.cfg.WorkspaceIndex == "" {
		return
	}
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	s.mu.Lock()
	if s.indexFrozen {
		s.mu.Unlock()
		return
	}
	f := wsFile{Version: 1}
	for _, k := range slices.Sorted(maps.Keys(s.ws)) {
		e := *s.ws[k]
		f.Workspaces = append(f.Workspaces, &e)
	}
	s.mu.Unlock()
	b, err := json.MarshalIndent(f, "", "  ")
	if err == nil {
		err = atomicfile.WriteWithBackup(s.cfg.WorkspaceIndex, b, 0o600, s.cfg.WorkspaceIndex+".bak")
	}
	if err != nil {
		s.log.Warn("sandbox: write workspace index", "path", s.cfg.WorkspaceIndex, "error", err)
	}
}

// human prints a byte count in MiB with one decimal, and exactly.
func human(n int64) string {
	return fmt.Sprintf("%.1f MiB (%d bytes)", float64(n)/(1<<20), n)
}

// quotaError is the refusal of a command past the quota.
func quotaError(vol, sessionKey string, usage, quota int64) error {
	used := human(usage)
	if usage < 0 {
		used = "an unknown amount (it could not be measured: an unreadable directory?)"
	}
	return fmt.Errorf("sandbox workspace %s uses %s, over its quota of %s (agents.defaults.sandbox.workspaceQuota); "+
		"commands are refused until it is freed: `moltbot sandbox prune --workspaces` deletes idle workspaces, "+
		"`moltbot sandbox recreate --session %s --reset-workspace` starts this one clean, or raise the quota: %w",
		vol, used, human(quota), sessionKey, errs.ErrResourceExhausted)
}

// checkQuota refuses a command when the workspace is past its quota,
// measuring first when its usage is unknown (after a restart).
func (s *Service) checkQuota(ctx context.Context, r *record, quota int64) error {
	s.mu.Lock()
	e := s.entryByVolume(r.wsVolume)
	var measured bool
	if e != nil {
		measured = e.Measured
		e.LastUsed, e.Quota = s.cfg.Now(), quota
	}
	s.mu.Unlock()
	if e == nil {
		return nil
	}
	if !measured {
		s.measure(ctx, r)
	}
	s.mu.Lock()
	usage, measured := e.Usage, e.Measured
	s.mu.Unlock()
	if measured && (usage < 0 || usage > quota) {
		return quotaError(r.wsVolume, r.sessionKey, usage, quota)
	}
	return nil
}

// measure measures r's workspace and records the result.
func (s *Service) measure(ctx context.Context, r *record) int64 {
	u, err := s.be.DiskUsage(ctx, r.c.ID, WorkspaceTarget)
	return s.recordUsage(r, u, err)
}

// recordUsage records a measurement of r's workspace. A container that is
// gone leaves it unmeasured (the next container measures); any other
// failure counts as over quota.
func (s *Service) recordUsage(r *record, u int64, err error) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entryByVolume(r.wsVolume)
	if e == nil {
		return u
	}
	switch {
	case errors.Is(err, backend.ErrContainerGone):
		e.Measured = false
		return 0
	case err != nil:
		s.log.Warn("sandbox: workspace measurement failed; counted as over quota", "volume", r.wsVolume, "error", err)
		e.Usage, e.Measured = -1, true
		return -1
	}
	e.Usage, e.Measured = u, true
	return u
}

// WorkspaceInfo describes one workspace volume.
type WorkspaceInfo struct {
	Volume, Kind, Key, SessionKey, AgentID string
	Usage, Quota                           int64
	Measured, InUse                        bool
	CreatedAt, LastUsedAt                  time.Time
}

// Workspaces lists the workspace volumes with their last measured usage.
func (s *Service) Workspaces(ctx context.Context) ([]WorkspaceInfo, error) {
	vols, err := s.be.ListVolumes(ctx)
	if err != nil {
		return nil, s.unavailable(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	inUse := map[string]bool{}
	for _, r := range s.byScope {
		inUse[r.wsVolume] = true
	}
	for _, c := range s.pool {
		inUse[c.Labels[LabelWorkspace]] = true
	}
	var out []WorkspaceInfo
	for _, v := range vols {
		kind := v.Labels[backend.LabelVolume]
		if kind != KindWorkspace && kind != KindAgentWorkspace {
			continue
		}
		wi := WorkspaceInfo{Volume: v.Name, Kind: kind, Key: v.Labels[backend.LabelScopeKey], SessionKey: v.Labels[backend.LabelSession],
			AgentID: v.Labels[backend.LabelAgentID], CreatedAt: parseTime(v.Labels[backend.LabelCreatedAt]), InUse: inUse[v.Name],
			Quota: s.defaults.WorkspaceQuota}
		if e := s.entryByVolume(v.Name); e != nil {
			wi.Key, wi.SessionKey, wi.AgentID = e.Key, e.Session, e.Agent
			wi.Usage, wi.Measured, wi.LastUsedAt, wi.CreatedAt = e.Usage, e.Measured, e.LastUsed, e.Created
			if e.Quota > 0 {
				wi.Quota = e.Quota
			}
		}
		if wi.LastUsedAt.IsZero() {
			wi.LastUsedAt = wi.CreatedAt
		}
		out = append(out, wi)
	}
	slices.SortFunc(out, func(a, b WorkspaceInfo) int { return strings.Compare(a.Volume, b.Volume) })
	return out, nil
}

// removeWorkspace removes the containers that mount vol, then vol.
func (s *Service) removeWorkspace(ctx context.Context, vol string) error {
	s.mu.Lock()
	var ids []string
	for _, r := range s.byScope {
		if r.wsVolume == vol {
			ids = append(ids, r.c.ID)
		}
	}
	for _, c := range s.pool {
		if c.Labels[LabelWorkspace] == vol {
			ids = append(ids, c.ID)
		}
	}
	s.mu.Unlock()
	cs, err := s.be.List(ctx)
	if err != nil {
		return s.unavailable(err)
	}
	for _, c := range cs {
		if c.Labels[LabelWorkspace] == vol && !slices.Contains(ids, c.ID) {
			ids = append(ids, c.ID)
		}
	}
	for _, id := range ids {
		if err := s.remove(ctx, id); err != nil {
			return err
		}
	}
	if err := s.be.RemoveVolume(ctx, vol); err != nil {
		return s.unavailable(err)
	}
	s.mu.Lock()
	for k, e := range s.ws {
		if e.Volume == vol {
			delete(s.ws, k)
		}
	}
	s.mu.Unlock()
	return nil
}

// PruneWorkspaces deletes session workspaces idle longer than idle (zero:
// the configured idle timeout), with the containers that mount them.
// Agent workspaces (the owner's) are never pruned. It returns the removed
// volumes.
func (s *Service) PruneWorkspaces(ctx context.Context, idle time.Duration) ([]string, error) {
	if idle <= 0 {
		idle = s.cfg.IdleTimeout
	}
	infos, err := s.Workspaces(ctx)
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	var removed []string
	for _, w := range infos {
		if w.Kind != KindWorkspace || now.Sub(w.LastUsedAt) <= idle {
			continue
		}
		if w.Key == "" && w.InUse {
			continue // a warm-pool volume waiting for its session
		}
		if err := s.removeWorkspace(ctx, w.Volume); err != nil {
			return removed, err
		}
		removed = append(removed, w.Volume)
	}
	if len(removed) > 0 {
		s.saveIndex()
		s.kickPool()
	}
	return removed, nil
}

// resetWorkspaces deletes the session workspaces of sessionKey (all: every
// session workspace); agent workspaces are kept.
func (s *Service) resetWorkspaces(ctx context.Context, sessionKey string, all bool) ([]string, error) {
	s.mu.Lock()
	var vols []string
	for _, e := range s.ws {
		if e.Kind == KindWorkspace && (all || e.Session == sessionKey) {
			vols = append(vols, e.Volume)
		}
	}
	s.mu.Unlock()
	slices.Sort(vols)
	var removed []string
	for _, v := range vols {
		if err := s.removeWorkspace(ctx, v); err != nil {
			return removed, err
		}
		removed = append(removed, v)
	}
	if len(removed) > 0 {
		s.saveIndex()
	}
	return removed, nil
}
