// Package api is sandboxd's gRPC surface: thin handlers over package sandbox.
package api

import (
	"context"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	sandboxv1 "github.com/moltbot/moltbot-secure/proto/sandbox/v1"
	"github.com/moltbot/moltbot-secure/sandboxd/internal/backend"
	"github.com/moltbot/moltbot-secure/sandboxd/internal/sandbox"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// Sandbox is the domain the handlers call; *sandbox.Service implements it.
type Sandbox interface {
	Ensure(ctx context.Context, req sandbox.EnsureRequest) (sandbox.EnsureResult, error)
	Exec(ctx context.Context, req sandbox.ExecRequest) (sandbox.ExecResult, error)
	List(ctx context.Context) ([]sandbox.ContainerInfo, error)
	Explain(sessionKey, agentID string, p *sandbox.Policy, profile sandbox.Profile, ownerWorkspace bool) (sandbox.Explanation, error)
	Recreate(ctx context.Context, sessionKey string, all bool) (int, error)
	RecreateReset(ctx context.Context, sessionKey string, all bool) (int, []string, error)
	Prune(ctx context.Context, idle, maxAge time.Duration) ([]string, error)
	PruneWorkspaces(ctx context.Context, idle time.Duration) ([]string, error)
	Workspaces(ctx context.Context) ([]sandbox.WorkspaceInfo, error)
	Info(ctx context.Context) sandbox.Info
	PoolReady() int
}

var _ Sandbox = (*sandbox.Service)(nil)

// Config holds the service's dependencies.
type Config struct {
	Sandbox Sandbox
	Logger  hclog.Logger
}

// Service implements sandboxv1.SandboxServer.
type Service struct {
	sandboxv1.UnsafeSandboxServer
	sb  Sandbox
	log hclog.Logger
}

var _ sandboxv1.SandboxServer = (*Service)(nil)

// New returns the gRPC service.
func New(cfg Config) *Service {
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Service{sb: cfg.Sandbox, log: log}
}

// RegisterService registers s on r.
func RegisterService(r grpc.ServiceRegistrar, s *Service) { sandboxv1.RegisterSandboxServer(r, s) }

// Authz is the per-method authorization table (default deny): the gateway
// may call everything; the admin CLI the read-only and admin methods.
func Authz() map[string][]string {
	both := []string{auth.IDGateway, auth.IDCLI}
	return map[string][]string{
		sandboxv1.Sandbox_Ensure_FullMethodName:   {auth.IDGateway},
		sandboxv1.Sandbox_Exec_FullMethodName:     {auth.IDGateway},
		sandboxv1.Sandbox_List_FullMethodName:     both,
		sandboxv1.Sandbox_Explain_FullMethodName:  both,
		sandboxv1.Sandbox_Recreate_FullMethodName: both,
		sandboxv1.Sandbox_Prune_FullMethodName:    both,
		sandboxv1.Sandbox_Info_FullMethodName:     both,
	}
}

// PolicyFromProto converts a request policy; nil means "configured defaults".
func PolicyFromProto(p *sandboxv1.Policy) *sandbox.Policy {
	if p == nil {
		return nil
	}
	return &sandbox.Policy{
		Mode: sandbox.Mode(p.GetMode()), Scope: sandbox.Scope(p.GetScope()),
		WorkspaceAccess: sandbox.WorkspaceAccess(p.GetWorkspaceAccess()),
		Image:           p.GetImage(), Network: p.GetNetwork(), MemoryBytes: p.GetMemoryBytes(), CPUs: p.GetCpus(),
		PidsLimit: p.GetPidsLimit(), Env: p.GetEnv(), Binds: p.GetBinds(),
		TmpfsBytes: p.GetTmpfsBytes(), MainNetwork: p.GetMainNetwork(), WorkspaceQuota: p.GetWorkspaceQuotaBytes(),
	}
}

// ProfileFromProto converts a request's profile: only PROFILE_MAIN is
// main; unspecified (an old gateway) is hardened, so it fails closed.
func ProfileFromProto(p sandboxv1.Profile) sandbox.Profile {
	if p == sandboxv1.Profile_PROFILE_MAIN {
		return sandbox.ProfileMain
	}
	return sandbox.ProfileHardened
}

func profileToProto(p sandbox.Profile) sandboxv1.Profile {
	if p == sandbox.ProfileMain {
		return sandboxv1.Profile_PROFILE_MAIN
	}
	return sandboxv1.Profile_PROFILE_HARDENED
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func containerToProto(c sandbox.ContainerInfo) *sandboxv1.ContainerInfo {
	return &sandboxv1.ContainerInfo{Id: c.ID, Name: c.Name, SessionKey: c.SessionKey, AgentId: c.AgentID,
		Scope: sandboxv1.Scope(c.Scope), ConfigHash: c.ConfigHash, Image: c.Image, State: c.State,
		CreatedAt: ts(c.CreatedAt), LastUsedAt: ts(c.LastUsedAt), Agent: c.Agent, Labels: c.Labels,
		WorkspaceVolume: c.Labels[sandbox.LabelWorkspace]}
}

func workspaceToProto(w sandbox.WorkspaceInfo) *sandboxv1.WorkspaceInfo {
	return &sandboxv1.WorkspaceInfo{Volume: w.Volume, Kind: w.Kind, Key: w.Key, SessionKey: w.SessionKey, AgentId: w.AgentID,
		UsageBytes: w.Usage, Measured: w.Measured, QuotaBytes: w.Quota, CreatedAt: ts(w.CreatedAt), LastUsedAt: ts(w.LastUsedAt), InUse: w.InUse}
}

func causeToProto(c backend.KillCause) sandboxv1.KillCause {
	switch c {
	case backend.CauseNone:
		return sandboxv1.KillCause_KILL_CAUSE_NONE
	case backend.CauseTimeout:
		return sandboxv1.KillCause_KILL_CAUSE_TIMEOUT
	case backend.CauseOOM:
		return sandboxv1.KillCause_KILL_CAUSE_OOM
	case backend.CausePidsLimit:
		return sandboxv1.KillCause_KILL_CAUSE_PIDS_LIMIT
	case backend.CauseSignal:
		return sandboxv1.KillCause_KILL_CAUSE_SIGNAL
	}
	return sandboxv1.KillCause_KILL_CAUSE_UNSPECIFIED
}

// Ensure implements sandboxv1.SandboxServer.
func (s *Service) Ensure(ctx context.Context, req *sandboxv1.EnsureRequest) (*sandboxv1.EnsureResponse, error) {
	r, err := s.sb.Ensure(ctx, sandbox.EnsureRequest{SessionKey: req.GetSessionKey(), AgentID: req.GetAgentId(), Policy: PolicyFromProto(req.GetPolicy()),
		Profile: ProfileFromProto(req.GetProfile()), OwnerWorkspace: req.GetOwnerWorkspace()})
	if err != nil {
		return nil, errs.ToStatus(err)
	}
	return &sandboxv1.EnsureResponse{Container: containerToProto(r.Container), Created: r.Created, FromPool: r.FromPool}, nil
}

// Exec implements sandboxv1.SandboxServer.
func (s *Service) Exec(ctx context.Context, req *sandboxv1.ExecRequest) (*sandboxv1.ExecResponse, error) {
	timeout, err := duration("timeout", req.GetTimeout())
	if err != nil {
		return nil, errs.ToStatus(err)
	}
	outCap := req.GetOutputCapBytes()
	if outCap < 0 || outCap > 1<<30 {
		return nil, errs.ToStatus(errInvalid("output_cap_bytes", errNonPositive))
	}
	r, err := s.sb.Exec(ctx, sandbox.ExecRequest{SessionKey: req.GetSessionKey(), AgentID: req.GetAgentId(), Argv: req.GetArgv(),
		Shell: req.GetShell(), Stdin: req.GetStdin(), Timeout: timeout, OutputCap: int(outCap), Policy: PolicyFromProto(req.GetPolicy()),
		Profile: ProfileFromProto(req.GetProfile()), OwnerWorkspace: req.GetOwnerWorkspace()})
	if err != nil {
		return nil, errs.ToStatus(err)
	}
	return &sandboxv1.ExecResponse{ExitCode: int32(r.ExitCode), Stdout: r.Stdout, Stderr: r.Stderr, Truncated: r.Truncated,
		KillCause: causeToProto(r.Cause), ContainerId: r.ContainerID, Duration: durationpb.New(r.Duration), Path: r.Path}, nil
}

// List implements sandboxv1.SandboxServer.
func (s *Service) List(ctx context.Context, _ *sandboxv1.ListRequest) (*sandboxv1.ListResponse, error) {
	cs, err := s.sb.List(ctx)
	if err != nil {
		return nil, errs.ToStatus(err)
	}
	resp := &sandboxv1.ListResponse{PoolSize: int32(s.sb.PoolReady())}
	for _, c := range cs {
		resp.Containers = append(resp.Containers, containerToProto(c))
	}
	ws, err := s.sb.Workspaces(ctx)
	if err != nil {
		return nil, errs.ToStatus(err)
	}
	for _, w := range ws {
		resp.Workspaces = append(resp.Workspaces, workspaceToProto(w))
	}
	return resp, nil
}

// Explain implements sandboxv1.SandboxServer.
func (s *Service) Explain(_ context.Context, req *sandboxv1.ExplainRequest) (*sandboxv1.ExplainResponse, error) {
	ex, err := s.sb.Explain(req.GetSessionKey(), req.GetAgentId(), PolicyFromProto(req.GetPolicy()),
		ProfileFromProto(req.GetProfile()), req.GetOwnerWorkspace())
	if err != nil {
		return nil, errs.ToStatus(err)
	}
	resp := &sandboxv1.ExplainResponse{Sandboxed: ex.Sandboxed, MainSession: ex.MainSession, Mode: sandboxv1.Mode(ex.Mode),
		Scope: sandboxv1.Scope(ex.Scope), ConfigHash: ex.ConfigHash, Profile: profileToProto(ex.Profile)}
	for _, it := range ex.Items {
		resp.Items = append(resp.Items, &sandboxv1.ExplainItem{Name: it.Name, Value: it.Value, Why: it.Why})
	}
	return resp, nil
}

// Recreate implements sandboxv1.SandboxServer.
func (s *Service) Recreate(ctx context.Context, req *sandboxv1.RecreateRequest) (*sandboxv1.RecreateResponse, error) {
	if !req.GetResetWorkspace() {
		n, err := s.sb.Recreate(ctx, req.GetSessionKey(), req.GetAll())
		if err != nil {
			return nil, errs.ToStatus(err)
		}
		return &sandboxv1.RecreateResponse{Removed: int32(n)}, nil
	}
	n, vols, err := s.sb.RecreateReset(ctx, req.GetSessionKey(), req.GetAll())
	if err != nil {
		return nil, errs.ToStatus(err)
	}
	return &sandboxv1.RecreateResponse{Removed: int32(n), WorkspacesRemoved: vols}, nil
}

// Prune implements sandboxv1.SandboxServer.
func (s *Service) Prune(ctx context.Context, req *sandboxv1.PruneRequest) (*sandboxv1.PruneResponse, error) {
	idle, err := duration("idle", req.GetIdle())
	if err != nil {
		return nil, errs.ToStatus(err)
	}
	maxAge, err := duration("max_age", req.GetMaxAge())
	if err != nil {
		return nil, errs.ToStatus(err)
	}
	removed, err := s.sb.Prune(ctx, idle, maxAge)
	if err != nil {
		return nil, errs.ToStatus(err)
	}
	resp := &sandboxv1.PruneResponse{Removed: removed}
	if req.GetWorkspaces() {
		if resp.WorkspacesRemoved, err = s.sb.PruneWorkspaces(ctx, idle); err != nil {
			return nil, errs.ToStatus(err)
		}
	}
	return resp, nil
}

// Info implements sandboxv1.SandboxServer.
func (s *Service) Info(ctx context.Context, _ *sandboxv1.InfoRequest) (*sandboxv1.InfoResponse, error) {
	in := s.sb.Info(ctx)
	return &sandboxv1.InfoResponse{DockerReachable: in.DockerReachable, DockerError: in.DockerError, ImagePresent: in.ImagePresent,
		Image: in.Image, Containers: int32(in.Containers), ApiVersion: in.APIVersion, PoolReady: int32(in.PoolReady)}, nil
}

// duration converts an optional proto duration; absent is zero (the default).
func duration(field string, d *durationpb.Duration) (time.Duration, error) {
	if d == nil {
		return 0, nil
	}
	if err := d.CheckValid(); err != nil {
		return 0, errInvalid(field, err)
	}
	if d.AsDuration() < 0 {
		return 0, errInvalid(field, errNonPositive)
	}
	return d.AsDuration(), nil
}
