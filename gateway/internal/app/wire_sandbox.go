package app

import (
	"context"

	"google.golang.org/grpc"

	"github.com/moltbot/moltbot-secure/gateway/internal/agent"
	"github.com/moltbot/moltbot-secure/gateway/internal/api/sandboxproxy"
	"github.com/moltbot/moltbot-secure/gateway/internal/execlog"
	sandboxv1 "github.com/moltbot/moltbot-secure/proto/sandbox/v1"
)

// wireSandbox sets up the agent's executor and the sandbox admin proxy.
//
// The sandbox policy is the current runtime's (runtime.Manager, wired
// after this): a reload that changes agents.defaults.sandbox reaches
// sandboxd with the next command, which recreates the container. Before
// the runtime exists (nothing runs then) the file is read.
func wireSandbox(_ context.Context, w *Wiring) error {
	sb := sandboxv1.NewSandboxClient(w.SandboxConn)
	file := agent.FilePolicySource(w.ConfigPath)
	policy := func() (*sandboxv1.Policy, error) {
		if m := w.live.Load(); m != nil {
			return m.SandboxPolicy()
		}
		return file()
	}
	// Every command goes to sandboxd: the gateway runs none itself.
	// Main-session commands go on record first.
	router := &agent.Router{Sandbox: sb, Policy: agent.PolicySource(policy)}
	w.Executor = execlog.Wrap(router, w.SecLog)
	if w.Agent == nil {
		w.Agent = &agent.Echo{Executor: w.Executor}
	}
	proxy := sandboxproxy.New(sandboxproxy.Config{Sandbox: sb, Policy: policy})
	w.Register = append(w.Register, func(r grpc.ServiceRegistrar) { sandboxproxy.RegisterService(r, proxy) })
	return nil
}
