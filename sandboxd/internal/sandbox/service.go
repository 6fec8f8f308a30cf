package sandbox

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/moltbot/moltbot-secure/sandboxd/internal/backend"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// Config holds the service's dependencies and knobs.
type Config struct {
	Backend backend.Backend
	Logger  hclog.Logger
	// Defaults is the configured policy (agents.defaults.sandbox); zero
	// fields take DefaultPolicy's values.
	Defaults Policy
	// PoolSize is the number of warm containers kept for the default policy:
	// 0 means 2, negative disables the pool.
	PoolSize int
	// IdleTimeout and MaxAge drive Prune and the background prune loop
	// (defaults 24h and 7d). PruneEvery 0 means hourly; negative disables the loop.
	IdleTimeout time.Duration
	MaxAge      time.Duration
	PruneEvery  time.Duration
	// User is the fixed uid:gid sandboxes run as; never taken from a caller.
	User string
	// NamePrefix prefixes container names (default "moltbot-sbx").
	NamePrefix string
	// WorkspaceIndex is the file mapping workspace keys to volumes, with
	// usage and last use ("" keeps it in memory: volumes are still found by
	// their labels after a restart, but warm-pool ones lose their session).
	WorkspaceIndex string
	// WatchEvery is how often the workspace is measured while a command
	// runs (0: 1s; negative: only after each command). A command whose
	// workspace passes its quota is stopped.
	WatchEvery time.Duration
	// PoolRefillDelay is how long after a session takes a warm container
	// the pool starts replacing it (0: 1s; negative: at once).
	PoolRefillDelay time.Duration
	// Exec limits: default and maximum timeout, default and maximum output cap.
	DefaultTimeout, MaxTimeout     time.Duration
	DefaultOutputCap, MaxOutputCap int
	// Nofile and Nproc are the ulimits. Nproc counts every task of User on the
	// host, summed over all sandboxes, so it must be well above PidsLimit.
	Nofile, Nproc int64
	Now           func() time.Time
	Rand          io.Reader
}

// Service manages sandbox containers.
type Service struct {
	cfg      Config
	be       backend.Backend
	log      hclog.Logger
	defaults Policy
	poolHash string

	mu       sync.Mutex
	byScope  map[string]*record // scope key -> container
	byHash   map[string]*record // name hash -> container of an unknown scope key (adopted before a restart)
	lastUsed map[string]time.Time
	pool     []backend.Container
	locks    map[string]*sync.Mutex
	ws       map[string]*wsEntry // workspace key -> workspace
	// indexFrozen: the index file was unreadable; it is left as found.
	indexFrozen bool
	saveMu      sync.Mutex
	savePending bool          // a saveSoon is waiting
	closing     chan struct{} // closed by Close: pending saves run now
	closeOnce   sync.Once

	poolKick chan struct{}
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

type record struct {
	c          backend.Container
	scopeKey   string
	sessionKey string
	agentID    string
	scope      Scope
	hash       string
	createdAt  time.Time
	fromPool   bool
	wsVolume   string // mounted rw at /workspace
	quota      int64  // the workspace quota of the policy it runs under
}

// New checks cfg and returns a service; Start loads state and starts the pool.
func New(cfg Config) (*Service, error) {
	if cfg.Backend == nil {
		return nil, fmt.Errorf("sandbox: Config.Backend is required: %w", errs.ErrInvalidArgument)
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.PoolSize == 0 {
		cfg.PoolSize = 2
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 24 * time.Hour
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = 7 * 24 * time.Hour
	}
	if cfg.PruneEvery == 0 {
		cfg.PruneEvery = time.Hour
	}
	if cfg.User == "" {
		cfg.User = "10001:10001"
	}
	if cfg.NamePrefix == "" {
		cfg.NamePrefix = "moltbot-sbx"
	}
	if cfg.WatchEvery == 0 {
		cfg.WatchEvery = time.Second
	}
	if cfg.PoolRefillDelay == 0 {
		cfg.PoolRefillDelay = time.Second
	}
	if cfg.DefaultTimeout <= 0 {
		cfg.DefaultTimeout = 30 * time.Second
	}
	if cfg.MaxTimeout <= 0 {
		cfg.MaxTimeout = 10 * time.Minute
	}
	if cfg.DefaultOutputCap <= 0 {
		cfg.DefaultOutputCap = 1 << 20
	}
	if cfg.MaxOutputCap <= 0 {
		cfg.MaxOutputCap = 16 << 20
	}
	if cfg.Nofile <= 0 {
		cfg.Nofile = 1024
	}
	if cfg.Nproc <= 0 {
		cfg.Nproc = 8192
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if u := strings.Split(cfg.User, ":"); len(u) != 2 || u[0] == "" || u[1] == "" || u[0] == "0" {
		return nil, fmt.Errorf("sandbox: user %q must be a non-root uid:gid: %w", cfg.User, errs.ErrInvalidArgument)
	}
	defaults := DefaultPolicy().Merge(&cfg.Defaults)
	if err := defaults.Validate(); err != nil {
		return nil, fmt.Errorf("sandbox defaults: %w", err)
	}
	poolHash := defaults.Hash(cfg.User, ProfileHardened, false)
	if defaults.WorkspaceAccess != WorkspaceNone {
		// ro and rw mount the agent's workspace, unknown before a session
		// arrives: no warm pool.
		poolHash = ""
	}
	return &Service{cfg: cfg, be: cfg.Backend, log: cfg.Logger, defaults: defaults, poolHash: poolHash,
		byScope: map[string]*record{}, byHash: map[string]*record{}, lastUsed: map[string]time.Time{},
		locks: map[string]*sync.Mutex{}, ws: map[string]*wsEntry{}, poolKick: make(chan struct{}, 1), closing: make(chan struct{})}, nil
}

// Defaults returns the effective configured policy.
func (s *Service) Defaults() Policy { return s.defaults }

// Start loads existing sandbox containers and starts the pool filler and the
// prune loop. An unreachable engine is logged, not fatal: Info reports it and
// sandboxed work is refused until it comes back.
func (s *Service) Start(ctx context.Context) {
	if err := s.load(ctx); err != nil {
		s.log.Warn("sandbox: could not load existing containers", "error", err)
	}
	if err := s.loadIndex(ctx); err != nil {
		s.log.Warn("sandbox: could not load the workspace index", "error", err)
	}
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	if s.cfg.PoolSize > 0 && s.poolHash != "" {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.poolLoop(bg) }()
		s.kickPool()
	}
	if s.cfg.PruneEvery > 0 {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			t := time.NewTicker(s.cfg.PruneEvery)
			defer t.Stop()
			for {
				select {
				case <-bg.Done():
					return
				case <-t.C:
					// Last use of each workspace, so a crash loses at most
					// one interval of it (prune --workspaces reads it).
					s.saveIndex()
					if removed, err := s.Prune(bg, 0, 0); err != nil {
						s.log.Warn("sandbox: prune", "error", err)
					} else if len(removed) > 0 {
						s.log.Info("sandbox: pruned containers", "count", len(removed))
					}
				}
			}
		}()
	}
}

// Close stops background work and saves the workspace index; containers
// keep running.
func (s *Service) Close() {
	if s.cancel != nil {
		s.cancel()
	}
	s.closeOnce.Do(func() { close(s.closing) })
	s.wg.Wait()
	s.saveIndex()
}

func (s *Service) load(ctx context.Context) error {
	cs, err := s.be.List(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range cs {
		l := c.Labels
		switch {
		case l[backend.LabelPool] == "1" && strings.Contains(c.Name, "-pool-"):
			if c.Running && l[backend.LabelConfigHash] == s.poolHash && len(s.pool) < s.cfg.PoolSize {
				s.pool = append(s.pool, c)
			}
		case l[backend.LabelScopeKey] != "":
			r := &record{c: c, scopeKey: l[backend.LabelScopeKey], sessionKey: l[backend.LabelSession],
				agentID: l[backend.LabelAgentID], scope: parseScope(l[backend.LabelScope]), hash: l[backend.LabelConfigHash],
				createdAt: parseTime(l[backend.LabelCreatedAt]), wsVolume: l[LabelWorkspace]}
			s.byScope[r.scopeKey] = r
		default:
			// A pool container adopted before a restart: its name carries the
			// scope key's hash.
			rest := strings.TrimPrefix(c.Name, s.cfg.NamePrefix+"-")
			if i := strings.IndexByte(rest, '-'); i > 0 && rest != c.Name {
				s.byHash[rest[:i]] = &record{c: c, hash: l[backend.LabelConfigHash], createdAt: parseTime(l[backend.LabelCreatedAt]), fromPool: true,
					wsVolume: l[LabelWorkspace]}
			}
		}
	}
	return nil
}

func parseScope(v string) Scope {
	switch v {
	case "session":
		return ScopeSession
	case "agent":
		return ScopeAgent
	case "shared":
		return ScopeShared
	}
	return ScopeUnset
}

func parseTime(v string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, v)
	return t
}

func nameHash(scopeKey string) string {
	sum := sha256.Sum256([]byte(scopeKey))
	return hex.EncodeToString(sum[:8])
}

func (s *Service) randSuffix() string {
	b := make([]byte, 4)
	if _, err := io.ReadFull(s.cfg.Rand, b); err != nil {
		return fmt.Sprintf("%08x", s.cfg.Now().UnixNano()&0xffffffff)
	}
	return hex.EncodeToString(b)
}

// scopeKey is the container identity for a session under scope sc.
func scopeKey(sc Scope, sessionKey, agentID string) (string, error) {
	switch sc {
	case ScopeSession:
		if sessionKey == "" {
			return "", fmt.Errorf("session key is required with scope session: %w", errs.ErrInvalidArgument)
		}
		return "session:" + sessionKey, nil
	case ScopeAgent:
		if agentID == "" {
			if p := strings.Split(sessionKey, ":"); len(p) >= 2 && p[0] == "agent" {
				agentID = p[1]
			}
		}
		if agentID == "" {
			return "", fmt.Errorf("agent id is required with scope agent: %w", errs.ErrInvalidArgument)
		}
		return "agent:" + agentID, nil
	default:
		return "shared", nil
	}
}

func checkKey(field, v string) error {
	if len(v) > 512 || strings.ContainsAny(v, "\x00\n") {
		return fmt.Errorf("%s must be at most 512 bytes without NUL or newline: %w", field, errs.ErrInvalidArgument)
	}
	return nil
}

// EnsureRequest asks for the container serving a session.
type EnsureRequest struct {
	SessionKey string
	AgentID    string
	Policy     *Policy
	// Profile is the sandbox kind (zero: hardened); OwnerWorkspace mounts
	// the owner's workspace volume and needs ProfileMain.
	Profile        Profile
	OwnerWorkspace bool
}

// effective is the policy a request runs under: the defaults merged with
// the request's policy, turned into the main profile's when asked, then
// validated. It is the one place a profile changes a policy.
func (s *Service) effective(o *Policy, profile Profile, ownerWorkspace bool) (Policy, error) {
	p := s.defaults.Merge(o)
	if ownerWorkspace && profile != ProfileMain {
		return Policy{}, fmt.Errorf("sandbox: the owner's workspace is mounted only under the main profile: %w", errs.ErrInvalidArgument)
	}
	if profile == ProfileMain {
		var err error
		if p, err = forMain(p); err != nil {
			return Policy{}, err
		}
	}
	if err := p.Validate(); err != nil {
		return Policy{}, err
	}
	return p, nil
}

// containerKey is scopeKey kept apart per profile: a main-profile
// container is never shared with a hardened session, and the owner's
// workspace container belongs to its session alone, whatever the scope.
func containerKey(p Policy, profile Profile, ownerWorkspace bool, sessionKey, agentID string) (string, error) {
	if ownerWorkspace {
		if sessionKey == "" {
			return "", fmt.Errorf("session key is required for the owner's workspace: %w", errs.ErrInvalidArgument)
		}
		return "owner|session:" + sessionKey, nil
	}
	key, err := scopeKey(p.Scope, sessionKey, agentID)
	if err != nil || profile != ProfileMain {
		return key, err
	}
	return "main|" + key, nil
}

// EnsureResult is the container and how it was obtained.
type EnsureResult struct {
	Container ContainerInfo
	Created   bool
	FromPool  bool
}

// ContainerInfo describes a sandbox container.
type ContainerInfo struct {
	ID, Name, SessionKey, AgentID string
	Scope                         Scope
	ConfigHash, Image, State      string
	CreatedAt, LastUsedAt         time.Time
	Agent, Pool                   bool
	Labels                        map[string]string
}

func (s *Service) lockKey(key string) func() {
	s.mu.Lock()
	l := s.locks[key]
	if l == nil {
		l = &sync.Mutex{}
		s.locks[key] = l
	}
	s.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// Ensure returns a running container for the session's scope, creating or
// recreating it when missing, dead, or built from another config hash.
func (s *Service) Ensure(ctx context.Context, req EnsureRequest) (EnsureResult, error) {
	r, created, fromPool, err := s.ensure(ctx, req, true)
	if err != nil {
		return EnsureResult{}, err
	}
	return EnsureResult{Container: s.info(r), Created: created, FromPool: fromPool}, nil
}

func (s *Service) ensure(ctx context.Context, req EnsureRequest, verify bool) (*record, bool, bool, error) {
	if err := checkKey("session key", req.SessionKey); err != nil {
		return nil, false, false, err
	}
	if err := checkKey("agent id", req.AgentID); err != nil {
		return nil, false, false, err
	}
	p, err := s.effective(req.Policy, req.Profile, req.OwnerWorkspace)
	if err != nil {
		return nil, false, false, err
	}
	key, err := containerKey(p, req.Profile, req.OwnerWorkspace, req.SessionKey, req.AgentID)
	if err != nil {
		return nil, false, false, err
	}
	hash := p.Hash(s.cfg.User, req.Profile, req.OwnerWorkspace)
	unlock := s.lockKey(key)
	defer unlock()

	s.mu.Lock()
	r := s.byScope[key]
	if r == nil {
		if r = s.byHash[nameHash(key)]; r != nil {
			delete(s.byHash, nameHash(key))
			r.scopeKey, r.sessionKey, r.agentID, r.scope = key, req.SessionKey, req.AgentID, p.Scope
			s.byScope[key] = r
		}
	}
	s.mu.Unlock()

	if r != nil && r.hash == hash {
		s.mu.Lock()
		r.quota = p.WorkspaceQuota
		s.mu.Unlock()
		alive := r.c.Running
		if verify {
			c, err := s.be.Inspect(ctx, r.c.ID)
			switch {
			case errors.Is(err, errs.ErrNotFound):
				alive = false
			case err != nil:
				return nil, false, false, s.unavailable(err)
			default:
				alive = c.Running
			}
		}
		if alive {
			s.touch(r.c.ID)
			return r, false, false, nil
		}
	}
	if r != nil {
		// Config changed or the container died: replace it.
		s.drop(r)
		if err := s.be.Remove(ctx, r.c.ID); err != nil {
			return nil, false, false, s.unavailable(err)
		}
	}
	nr, fromPool, err := s.create(ctx, key, req, p, hash)
	if err != nil {
		return nil, false, false, err
	}
	return nr, true, fromPool, nil
}

// unavailable adds the fail-closed note to engine errors.
func (s *Service) unavailable(err error) error {
	if errors.Is(err, errs.ErrUnavailable) || errors.Is(err, errs.ErrFailedPrecondition) {
		return fmt.Errorf("%w; sandboxed sessions are refused until this is fixed (never run unsandboxed)", err)
	}
	return err
}

func (s *Service) spec(name string, p Policy, l layout, labels map[string]string) backend.Spec {
	env := []string{"HOME=/tmp"}
	keys := make([]string, 0, len(p.Env))
	for k := range p.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+p.Env[k])
	}
	binds := make([]string, 0, len(p.Binds))
	for _, b := range p.Binds {
		nb, _ := normalizeBind(b) // validated already
		binds = append(binds, nb)
	}
	labels[LabelWorkspace] = l.ws.Name
	return backend.Spec{Name: name, Image: p.Image, User: s.cfg.User, Env: env, Labels: labels,
		MemoryBytes: p.MemoryBytes, NanoCPUs: int64(p.CPUs * 1e9), PidsLimit: p.PidsLimit, TmpfsBytes: p.TmpfsBytes,
		Nofile: s.cfg.Nofile, Nproc: s.cfg.Nproc, Fsize: p.WorkspaceQuota, Network: p.Network, Binds: binds,
		Volumes: l.volumes(), WorkingDir: WorkspaceTarget}
}

func (s *Service) create(ctx context.Context, key string, req EnsureRequest, p Policy, hash string) (*record, bool, error) {
	l, err := s.layoutFor(p, key, req.SessionKey, req.AgentID, req.OwnerWorkspace)
	if err != nil {
		return nil, false, err
	}
	s.mu.Lock()
	_, hasWS := s.ws[l.wsKey]
	s.mu.Unlock()
	// A pool container brings a fresh workspace: only for a session that
	// has none yet.
	if hash == s.poolHash && !hasWS && l.kind == KindWorkspace {
		s.mu.Lock()
		var c backend.Container
		ok := len(s.pool) > 0
		if ok {
			c, s.pool = s.pool[0], s.pool[1:]
		}
		s.mu.Unlock()
		if ok {
			r := &record{c: c, scopeKey: key, sessionKey: req.SessionKey, agentID: req.AgentID, scope: p.Scope,
				hash: hash, createdAt: parseTime(c.Labels[backend.LabelCreatedAt]), fromPool: true,
				wsVolume: c.Labels[LabelWorkspace], quota: p.WorkspaceQuota}
			s.mu.Lock()
			s.byScope[key] = r
			s.mu.Unlock()
			l.ws.Name = r.wsVolume
			s.register(l, req.SessionKey, req.AgentID, p.Scope, true)
			s.touch(c.ID)
			// Labels cannot change after create; the name carries the scope
			// hash so a restarted sandboxd finds it. Both the rename and the
			// refill wait a little: creating a container costs the engine
			// far more than the command this session is about to run.
			name := fmt.Sprintf("%s-%s-%s", s.cfg.NamePrefix, nameHash(key), s.randSuffix())
			time.AfterFunc(s.cfg.PoolRefillDelay, func() {
				if err := s.be.Rename(context.Background(), c.ID, name); err != nil {
					s.log.Warn("sandbox: rename adopted pool container", "container", c.ID[:12], "error", err)
				}
				s.kickPool()
			})
			return r, true, nil
		}
	}
	now := s.cfg.Now()
	labels := map[string]string{
		backend.LabelSession:    req.SessionKey,
		backend.LabelAgentID:    req.AgentID,
		backend.LabelScope:      p.Scope.String(),
		backend.LabelScopeKey:   key,
		backend.LabelConfigHash: hash,
		backend.LabelCreatedAt:  now.UTC().Format(time.RFC3339Nano),
		backend.LabelProfile:    req.Profile.String(),
	}
	name := fmt.Sprintf("%s-%s-%s", s.cfg.NamePrefix, nameHash(key), s.randSuffix())
	c, err := s.be.Create(ctx, s.spec(name, p, l, labels))
	if err != nil {
		return nil, false, s.unavailable(err)
	}
	s.register(l, req.SessionKey, req.AgentID, p.Scope, false)
	r := &record{c: c, scopeKey: key, sessionKey: req.SessionKey, agentID: req.AgentID, scope: p.Scope, hash: hash, createdAt: now,
		wsVolume: l.ws.Name, quota: p.WorkspaceQuota}
	s.mu.Lock()
	s.byScope[key] = r
	s.mu.Unlock()
	s.touch(c.ID)
	return r, false, nil
}

func (s *Service) touch(id string) {
	s.mu.Lock()
	s.lastUsed[id] = s.cfg.Now()
	s.mu.Unlock()
}

func (s *Service) drop(r *record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byScope[r.scopeKey] == r {
		delete(s.byScope, r.scopeKey)
	}
	delete(s.lastUsed, r.c.ID)
}

func (s *Service) kickPool() {
	select {
	case s.poolKick <- struct{}{}:
	default:
	}
}

// poolLoop keeps PoolSize containers of the default policy ready.
func (s *Service) poolLoop(ctx context.Context) {
	backoff := time.Second
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.poolKick:
		}
		for ctx.Err() == nil {
			s.mu.Lock()
			need := len(s.pool) < s.cfg.PoolSize
			s.mu.Unlock()
			if !need {
				break
			}
			now := s.cfg.Now()
			labels := map[string]string{backend.LabelPool: "1", backend.LabelConfigHash: s.poolHash,
				backend.LabelCreatedAt: now.UTC().Format(time.RFC3339Nano)}
			suffix := s.randSuffix()
			name := fmt.Sprintf("%s-pool-%s", s.cfg.NamePrefix, suffix)
			// A volume + container pair: the workspace is created with the
			// container, so a new session's first command pays for neither.
			l := layout{kind: KindWorkspace, ws: backend.Volume{Name: s.cfg.NamePrefix + "-ws-pool-" + suffix, Target: WorkspaceTarget,
				Labels: map[string]string{backend.LabelVolume: KindWorkspace, backend.LabelPool: "1", backend.LabelCreatedAt: labels[backend.LabelCreatedAt]}}}
			// Not cancelled by Close mid-create: a create the engine finished
			// after a cancel would leave an untracked container behind.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			c, err := s.be.Create(cctx, s.spec(name, s.defaults, l, labels))
			cancel()
			if err == nil && ctx.Err() != nil {
				_ = s.be.Remove(context.WithoutCancel(ctx), c.ID)
				_ = s.be.RemoveVolume(context.WithoutCancel(ctx), l.ws.Name)
				return
			}
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("sandbox: warm pool create failed; retrying", "error", err, "in", backoff)
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, time.Minute)
				continue
			}
			backoff = time.Second
			// Warm it: the first process a container starts pays for cold
			// caches (tens of ms); a session's first command should not.
			// The shell and the measurement after it are what every command
			// starts with.
			wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			_, _ = s.be.Exec(wctx, c.ID, backend.ExecSpec{Argv: []string{"/bin/sh", "-c", "true"}, Timeout: 10 * time.Second, OutputCap: 4096, Measure: WorkspaceTarget})
			cancel()
			s.mu.Lock()
			s.pool = append(s.pool, c)
			s.mu.Unlock()
		}
	}
}

// PoolReady returns the number of warm containers.
func (s *Service) PoolReady() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pool)
}

// ExecRequest is one command for a session's sandbox. Exactly one of Argv
// and Shell is set; Shell runs through /bin/sh -c.
type ExecRequest struct {
	SessionKey string
	AgentID    string
	Argv       []string
	Shell      string
	Stdin      []byte
	Timeout    time.Duration
	OutputCap  int
	Policy     *Policy
	// Profile and OwnerWorkspace as in EnsureRequest.
	Profile        Profile
	OwnerWorkspace bool
	// ForceDockerExec skips the agent (benchmarks, fallback tests).
	ForceDockerExec bool
}

// ExecResult is a command's outcome.
type ExecResult struct {
	ExitCode    int
	Stdout      []byte
	Stderr      []byte
	Truncated   bool
	Cause       backend.KillCause
	ContainerID string
	Duration    time.Duration
	Path        string
}

// Exec runs a command in the session's container (ensuring it first).
func (s *Service) Exec(ctx context.Context, req ExecRequest) (ExecResult, error) {
	argv := req.Argv
	switch {
	case len(req.Argv) > 0 && req.Shell != "":
		return ExecResult{}, fmt.Errorf("exec: set argv or shell, not both: %w", errs.ErrInvalidArgument)
	case req.Shell != "":
		argv = []string{"/bin/sh", "-c", req.Shell}
	case len(req.Argv) == 0 || req.Argv[0] == "":
		return ExecResult{}, fmt.Errorf("exec: argv or shell is required: %w", errs.ErrInvalidArgument)
	}
	timeout := req.Timeout
	if timeout == 0 {
		timeout = s.cfg.DefaultTimeout
	}
	if timeout < time.Millisecond || timeout > s.cfg.MaxTimeout {
		return ExecResult{}, fmt.Errorf("exec timeout %s outside 1ms..%s: %w", timeout, s.cfg.MaxTimeout, errs.ErrInvalidArgument)
	}
	outCap := req.OutputCap
	if outCap == 0 {
		outCap = s.cfg.DefaultOutputCap
	}
	if outCap < 1 || outCap > s.cfg.MaxOutputCap {
		return ExecResult{}, fmt.Errorf("exec output cap %d outside 1..%d: %w", outCap, s.cfg.MaxOutputCap, errs.ErrInvalidArgument)
	}
	if len(req.Stdin) > 1<<20 {
		return ExecResult{}, fmt.Errorf("exec stdin of %d bytes, max 1 MiB: %w", len(req.Stdin), errs.ErrInvalidArgument)
	}
	for attempt := 0; ; attempt++ {
		r, _, _, err := s.ensure(ctx, EnsureRequest{SessionKey: req.SessionKey, AgentID: req.AgentID, Policy: req.Policy,
			Profile: req.Profile, OwnerWorkspace: req.OwnerWorkspace}, false)
		if err != nil {
			return ExecResult{}, err
		}
		s.mu.Lock()
		quota := r.quota
		s.mu.Unlock()
		if err := s.checkQuota(ctx, r, quota); err != nil {
			return ExecResult{}, err
		}
		spec := backend.ExecSpec{Argv: argv, Stdin: req.Stdin, Timeout: timeout, OutputCap: outCap, ForceDockerExec: req.ForceDockerExec}
		if r.wsVolume != "" {
			// Measured after the command, in the same round trip.
			spec.Measure = WorkspaceTarget
		}
		res, over, err := s.execWatched(ctx, r, quota, spec)
		if over {
			s.drop(r)
			s.mu.Lock()
			usage := int64(-1)
			if e := s.entryByVolume(r.wsVolume); e != nil {
				usage = e.Usage
			}
			s.mu.Unlock()
			s.saveIndex()
			return ExecResult{}, fmt.Errorf("the command was stopped: %w", quotaError(r.wsVolume, r.sessionKey, usage, quota))
		}
		if errors.Is(err, backend.ErrContainerGone) {
			s.discard(r)
			if errors.Is(err, backend.ErrNotSent) && attempt == 0 {
				// The command never reached the dead container: safe to run it
				// once in a fresh one.
				continue
			}
			return ExecResult{}, fmt.Errorf("sandbox container died during the command; it will be recreated on next use: %v: %w", err, errs.ErrUnavailable)
		}
		if err != nil {
			return ExecResult{}, s.unavailable(err)
		}
		s.touch(r.c.ID)
		if res.Cause == backend.CausePidsLimit {
			// A fork bomb may keep the container wedged at its pids limit;
			// killing processes from inside does not stop one. Start fresh
			// (the next container measures the workspace first).
			s.discard(r)
			s.unmeasured(r.wsVolume)
		} else if u := s.recordUsage(r, res.Usage, res.UsageErr); r.wsVolume != "" && (u < 0 || u > quota) {
			// Past the quota: the next command is refused, and processes
			// this one left running must not keep writing. The workspace
			// stays; only the container goes.
			s.discard(r)
		}
		return ExecResult{ExitCode: res.ExitCode, Stdout: res.Stdout, Stderr: res.Stderr, Truncated: res.Truncated,
			Cause: res.Cause, ContainerID: r.c.ID, Duration: res.Duration, Path: res.Path}, nil
	}
}

// execWatched runs a command while measuring its workspace every
// WatchEvery; past the quota the container is removed, which ends the
// command (over is then true). The overshoot is therefore bounded by what
// the sandbox writes in one interval plus one measurement.
func (s *Service) execWatched(ctx context.Context, r *record, quota int64, spec backend.ExecSpec) (backend.ExecResult, bool, error) {
	if s.cfg.WatchEvery < 0 || r.wsVolume == "" {
		res, err := s.be.Exec(ctx, r.c.ID, spec)
		return res, false, err
	}
	done := make(chan struct{})
	var over atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(s.cfg.WatchEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			// Only a measured overshoot stops a command; a failed
			// measurement is left to the one after the command.
			u, err := s.be.DiskUsage(ctx, r.c.ID, WorkspaceTarget)
			if err != nil || u <= quota {
				continue
			}
			over.Store(true)
			s.mu.Lock()
			if e := s.entryByVolume(r.wsVolume); e != nil {
				e.Usage, e.Measured = u, true
			}
			s.mu.Unlock()
			if err := s.be.Remove(context.WithoutCancel(ctx), r.c.ID); err != nil {
				s.log.Warn("sandbox: remove container past its workspace quota", "container", r.c.ID[:12], "error", err)
			}
			return
		}
	}()
	res, err := s.be.Exec(ctx, r.c.ID, spec)
	close(done)
	wg.Wait()
	return res, over.Load(), err
}

func (s *Service) unmeasured(vol string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.entryByVolume(vol); e != nil {
		e.Measured = false
	}
}

// discard forgets r and removes its container in the background.
func (s *Service) discard(r *record) {
	s.drop(r)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.be.Remove(context.Background(), r.c.ID); err != nil {
			s.log.Warn("sandbox: remove broken container", "container", r.c.ID[:12], "error", err)
		}
	}()
}

func (s *Service) info(r *record) ContainerInfo {
	s.mu.Lock()
	last := s.lastUsed[r.c.ID]
	s.mu.Unlock()
	return s.infoFor(r.c, r, last)
}

func (s *Service) infoFor(c backend.Container, r *record, last time.Time) ContainerInfo {
	labels := map[string]string{}
	for k, v := range c.Labels {
		labels[k] = v
	}
	ci := ContainerInfo{ID: c.ID, Name: c.Name, Image: c.Image, State: c.State, Agent: c.Agent, Labels: labels,
		ConfigHash: labels[backend.LabelConfigHash], CreatedAt: parseTime(labels[backend.LabelCreatedAt]),
		SessionKey: labels[backend.LabelSession], AgentID: labels[backend.LabelAgentID], Scope: parseScope(labels[backend.LabelScope]),
		Pool: labels[backend.LabelPool] == "1"}
	if r != nil && r.scopeKey != "" {
		// An adopted pool container's labels predate its session: overlay
		// what sandboxd knows.
		ci.SessionKey, ci.AgentID, ci.Scope = r.sessionKey, r.agentID, r.scope
		labels[backend.LabelSession], labels[backend.LabelAgentID] = r.sessionKey, r.agentID
		labels[backend.LabelScope], labels[backend.LabelScopeKey] = r.scope.String(), r.scopeKey
		ci.Pool = false
	}
	ci.LastUsedAt = last
	if ci.LastUsedAt.IsZero() {
		ci.LastUsedAt = ci.CreatedAt
	}
	return ci
}

// List returns every sandbox container of this sandboxd.
func (s *Service) List(ctx context.Context) ([]ContainerInfo, error) {
	cs, err := s.be.List(ctx)
	if err != nil {
		return nil, s.unavailable(err)
	}
	s.mu.Lock()
	byID := map[string]*record{}
	for _, r := range s.byScope {
		byID[r.c.ID] = r
	}
	last := map[string]time.Time{}
	for k, v := range s.lastUsed {
		last[k] = v
	}
	s.mu.Unlock()
	out := make([]ContainerInfo, 0, len(cs))
	for _, c := range cs {
		out = append(out, s.infoFor(c, byID[c.ID], last[c.ID]))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, nil
}

// Recreate removes the containers of one session (or all) so the next
// Ensure builds fresh ones. It returns how many were removed. Workspaces
// stay, unless resetWorkspace: then the session's own workspaces go too
// (RecreateWorkspaces).
func (s *Service) Recreate(ctx context.Context, sessionKey string, all bool) (int, error) {
	if !all && sessionKey == "" {
		return 0, fmt.Errorf("recreate: give a session key or all: %w", errs.ErrInvalidArgument)
	}
	infos, err := s.List(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, ci := range infos {
		if !all && ci.SessionKey != sessionKey {
			continue
		}
		if err := s.removeInfo(ctx, ci); err != nil {
			return n, err
		}
		n++
	}
	if all {
		s.kickPool()
	}
	return n, nil
}

// RecreateReset is Recreate plus deleting the session's own workspaces
// (every session workspace with all; agent workspaces are kept), so the
// next command starts clean. It returns the containers and volumes removed.
func (s *Service) RecreateReset(ctx context.Context, sessionKey string, all bool) (int, []string, error) {
	n, err := s.Recreate(ctx, sessionKey, all)
	if err != nil {
		return n, nil, err
	}
	vols, err := s.resetWorkspaces(ctx, sessionKey, all)
	return n, vols, err
}

// removeInfo removes a listed container; a warm-pool container takes its
// never-used workspace volume with it.
func (s *Service) removeInfo(ctx context.Context, ci ContainerInfo) error {
	if err := s.remove(ctx, ci.ID); err != nil {
		return err
	}
	vol := ci.Labels[LabelWorkspace]
	if !ci.Pool || vol == "" {
		return nil
	}
	s.mu.Lock()
	used := s.entryByVolume(vol) != nil
	s.mu.Unlock()
	if !used {
		if err := s.be.RemoveVolume(ctx, vol); err != nil {
			s.log.Warn("sandbox: remove unused pool workspace", "volume", vol, "error", err)
		}
	}
	return nil
}

func (s *Service) remove(ctx context.Context, id string) error {
	s.mu.Lock()
	for k, r := range s.byScope {
		if r.c.ID == id {
			delete(s.byScope, k)
		}
	}
	for k, r := range s.byHash {
		if r.c.ID == id {
			delete(s.byHash, k)
		}
	}
	for i, c := range s.pool {
		if c.ID == id {
			s.pool = append(s.pool[:i:i], s.pool[i+1:]...)
			break
		}
	}
	delete(s.lastUsed, id)
	s.mu.Unlock()
	if err := s.be.Remove(ctx, id); err != nil {
		return s.unavailable(err)
	}
	return nil
}

// Prune removes sandbox containers idle longer than idle or older than
// maxAge (zero: the configured defaults). Only containers with the sandbox
// marker label are considered. It returns the removed ids.
func (s *Service) Prune(ctx context.Context, idle, maxAge time.Duration) ([]string, error) {
	if idle <= 0 {
		idle = s.cfg.IdleTimeout
	}
	if maxAge <= 0 {
		maxAge = s.cfg.MaxAge
	}
	infos, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	var removed []string
	for _, ci := range infos {
		if ci.Labels[backend.LabelMarker] != "1" {
			continue
		}
		if now.Sub(ci.LastUsedAt) <= idle && now.Sub(ci.CreatedAt) <= maxAge {
			continue
		}
		if err := s.removeInfo(ctx, ci); err != nil {
			return removed, err
		}
		removed = append(removed, ci.ID)
	}
	if len(removed) > 0 {
		s.kickPool()
	}
	return removed, nil
}

// Info is the engine and image state.
type Info struct {
	DockerReachable bool
	DockerError     string
	ImagePresent    bool
	Image           string
	Containers      int
	APIVersion      string
	PoolReady       int
}

// Info reports whether sandboxing can work right now, with the fix when not.
func (s *Service) Info(ctx context.Context) Info {
	in := Info{Image: s.defaults.Image, PoolReady: s.PoolReady()}
	v, err := s.be.Ping(ctx)
	if err != nil {
		in.DockerError = err.Error()
		return in
	}
	in.DockerReachable, in.APIVersion = true, v
	ok, err := s.be.ImagePresent(ctx, s.defaults.Image)
	if err != nil {
		in.DockerError = err.Error()
		return in
	}
	in.ImagePresent = ok
	if !ok {
		in.DockerError = fmt.Sprintf("sandbox image %q is missing: build it with `make sandbox-image`", s.defaults.Image)
	}
	if cs, err := s.be.List(ctx); err == nil {
		in.Containers = len(cs)
	}
	return in
}
