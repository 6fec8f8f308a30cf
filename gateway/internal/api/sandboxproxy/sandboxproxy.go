// Package sandboxproxy serves the sandbox admin methods on the gateway for
// the CLI (the CLI never dials sandboxd): each call is forwarded to sandboxd.
// Ensure and Exec are not exposed: only the agent's executor runs commands.
// Who may call what is the client port's one table (api/authz.go).
package sandboxproxy

import (
	"context"
	"fmt"

	"google.golang.org/grpc"

	"github.com/moltbot/moltbot-secure/gateway/internal/agent"
	sandboxv1 "github.com/moltbot/moltbot-secure/proto/sandbox/v1"
	"github.com/moltbot/moltbot-secure/services/errs"
	"github.com/moltbot/moltbot-secure/services/sessionkey"
)

// DefaultSession is what Explain explains when no session is given.
const DefaultSession = "agent:main:main"

// Config holds the proxy's dependencies.
type Config struct {
	// Sandbox is the client of sandboxd.
	Sandbox sandboxv1.SandboxClient
	// Policy returns the gateway's current sandbox policy, which Explain
	// fills in so the answer matches what the executor sends.
	Policy func() (*sandboxv1.Policy, error)
}

// Service implements sandboxv1.SandboxServer by forwarding.
type Service struct {
	sandboxv1.UnsafeSandboxServer
	sb     sandboxv1.SandboxClient
	policy func() (*sandboxv1.Policy, error)
}

var _ sandboxv1.SandboxServer = (*Service)(nil)

// New returns the proxy.
func New(cfg Config) *Service { return &Service{sb: cfg.Sandbox, policy: cfg.Policy} }

// RegisterService registers s on r.
func RegisterService(r grpc.ServiceRegistrar, s *Service) { sandboxv1.RegisterSandboxServer(r, s) }

var errNotExposed = fmt.Errorf("not exposed by the gateway: commands run only through the agent: %w", errs.ErrPermissionDenied)

// Ensure is not exposed.
func (s *Service) Ensure(context.Context, *sandboxv1.EnsureRequest) (*sandboxv1.EnsureResponse, error) {
	return nil, errNotExposed
}

// Exec is not exposed.
func (s *Service) Exec(context.Context, *sandboxv1.ExecRequest) (*sandboxv1.ExecResponse, error) {
	return nil, errNotExposed
}

// List forwards to sandboxd.
func (s *Service) List(ctx context.Context, req *sandboxv1.ListRequest) (*sandboxv1.ListResponse, error) {
	return s.sb.List(ctx, req)
}

// Explain forwards with the gateway's policy when the request has none,
// and with the profile the executor would choose (agent.ChooseProfile),
// whose reason replaces sandboxd's generic one. Only an owner's DM is ever
// given the main session key, so that key is explained as the owner's.
func (s *Service) Explain(ctx context.Context, req *sandboxv1.ExplainRequest) (*sandboxv1.ExplainResponse, error) {
	out := &sandboxv1.ExplainRequest{SessionKey: req.GetSessionKey(), AgentId: req.GetAgentId(), Policy: req.GetPolicy()}
	if out.SessionKey == "" {
		out.SessionKey = DefaultSession
	}
	if out.Policy == nil && s.policy != nil {
		p, err := s.policy()
		if err != nil {
			return nil, err
		}
		out.Policy = p
	}
	choice := agent.ChooseProfile(out.GetPolicy().GetMode(), out.SessionKey, sessionkey.IsMain(out.SessionKey, ""))
	out.Profile, out.OwnerWorkspace = choice.Profile, choice.OwnerWorkspace
	resp, err := s.sb.Explain(ctx, out)
	if err != nil {
		return nil, err
	}
	for _, it := range resp.GetItems() {
		if it.GetName() == "profile" {
			it.Why = choice.Why
		}
	}
	return resp, nil
}

// Recreate forwards to sandboxd.
func (s *Service) Recreate(ctx context.Context, req *sandboxv1.RecreateRequest) (*sandboxv1.RecreateResponse, error) {
	return s.sb.Recreate(ctx, req)
}

// Prune forwards to sandboxd.
func (s *Service) Prune(ctx context.Context, req *sandboxv1.PruneRequest) (*sandboxv1.PruneResponse, error) {
	return s.sb.Prune(ctx, req)
}

// Info forwards to sandboxd.
func (s *Service) Info(ctx context.Context, req *sandboxv1.InfoRequest) (*sandboxv1.InfoResponse, error) {
	return s.sb.Info(ctx, req)
}
