// Package app is the gateway's composition root: it loads the config and
// the token, dials the internal services, lets each capability wire itself
// (wire_*.go) and serves the client port.
package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"

	"github.com/moltbot/moltbot-secure/gateway/internal/agent"
	"github.com/moltbot/moltbot-secure/gateway/internal/api"
	"github.com/moltbot/moltbot-secure/gateway/internal/configstore"
	"github.com/moltbot/moltbot-secure/gateway/internal/runtime"
	"github.com/moltbot/moltbot-secure/gateway/internal/seckey"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/seclog"
	"github.com/moltbot/moltbot-secure/services/server"
	"github.com/moltbot/moltbot-secure/services/statedir"
)

// Options are the gateway's flags.
type Options struct {
	Base        server.Base
	SecretsAddr string
	PairingAddr string
	SandboxAddr string
	Version     string
	// UIAddr is the Control UI's HTTP listener ("off": none); UIURL is
	// how a browser reaches it (compose publishes another port).
	UIAddr string
	UIURL  string
}

// Wiring is what the capabilities share while the gateway is assembled.
// Each wire_*.go fills in its part; nothing outside this package sees it.
type Wiring struct {
	Opts       Options
	Loaded     *server.Loaded
	Logger     hclog.Logger
	StateDir   string
	ConfigPath string

	SecretsConn *grpc.ClientConn
	PairingConn *grpc.ClientConn
	SandboxConn *grpc.ClientConn

	// Token is the gateway token and TokenSource where it came from (never the token).
	Token       string
	TokenSource string
	GatewayAuth *auth.GatewayToken

	// Agent is the echo backend; Executor runs the agents' exec tool.
	Agent    agent.Agent
	Executor agent.Executor

	API api.Config
	// Register adds services besides Gateway (the pairing and sandbox
	// proxies); their rows are in api.Authz, the client port's one table.
	Register []func(grpc.ServiceRegistrar)
	// Background runs after the server starts (channel pollers); each ends with ctx.
	Background []func(ctx context.Context)
	// Closers run at shutdown, in reverse order.
	Closers []func()

	// SecLog is the security event log (logs/security.jsonl), keyed with
	// the key SecKey keeps sealed by secretsd (opened once secretsd answers).
	// Each package records the decisions it makes; never a secret.
	SecLog *seclog.Log
	// SecKey unseals and reseals the log's key (a keyring import reseals).
	SecKey *seckey.Store
	// Config owns moltbot.json: Config.Current() is the loaded config with its secrets decrypted.
	Config *configstore.Store

	// Runtime is the message runtime (channels, policies, owners, agent
	// backend, sandbox mode, DM scope); reload replaces it.
	Runtime *runtime.Manager
	// live is Runtime for readers that may run while it is being wired
	// (the sandbox policy: a first message can arrive meanwhile).
	live atomic.Pointer[runtime.Manager]

	// Reloader applies the config file in place (Reload RPC, SIGHUP).
	Reloader *runtime.Reloader

	tokenMu sync.RWMutex // guards Token and TokenSource after start-up
}

// CurrentToken returns the gateway token and its source (reload swaps them).
func (w *Wiring) CurrentToken() (string, string) {
	w.tokenMu.RLock()
	defer w.tokenMu.RUnlock()
	return w.Token, w.TokenSource
}

func (w *Wiring) setToken(tok, src string) {
	w.tokenMu.Lock()
	w.Token, w.TokenSource = tok, src
	w.tokenMu.Unlock()
}

// Run loads everything, serves until ctx ends and stops gracefully.
func Run(ctx context.Context, o Options) error {
	// Before anything is loaded or dialled: a weak token from the
	// environment is known to be fatal now.
	if err := CheckEnvToken(); err != nil {
		return err
	}
	ld, err := o.Base.Load()
	if err != nil {
		return err
	}
	w := &Wiring{Opts: o, Loaded: ld, Logger: ld.Logger, StateDir: ld.Base.StateDir, ConfigPath: statedir.ConfigPath(ld.Base.StateDir)}
	defer func() {
		for i := len(w.Closers) - 1; i >= 0; i-- {
			w.Closers[i]()
		}
	}()
	if err := statedir.Ensure(w.StateDir); err != nil {
		return err
	}
	for _, d := range []struct {
		id, addr string
		conn     **grpc.ClientConn
	}{
		{auth.IDSecretsd, o.SecretsAddr, &w.SecretsConn}, {auth.IDPairingd, o.PairingAddr, &w.PairingConn}, {auth.IDSandboxd, o.SandboxAddr, &w.SandboxConn},
	} {
		cc, err := ld.DialService(d.id, d.addr)
		if err != nil {
			return fmt.Errorf("--%s-addr: %w", d.id, err)
		}
		w.Closers = append(w.Closers, func() { cc.Close() })
		*d.conn = cc
		w.API.Deps = append(w.API.Deps, api.Dependency{Name: d.id, Addr: d.addr, Conn: cc})
	}
	w.API.Version, w.API.StartedAt, w.API.Logger = o.Version, time.Now(), ld.Logger

	// Order matters: secrets (the security log, config + token) first, then sandbox (the agent's
	// executor), then messaging (channels feeding the agent), then operations.
	if err := wireSecrets(ctx, w); err != nil {
		return err
	}
	// Refuse a weak token before anything else starts (channels, pollers).
	if err := auth.CheckToken(w.Token); err != nil {
		return fmt.Errorf("gateway token from %s: %w", w.TokenSource, err)
	}
	for _, wire := range []func(context.Context, *Wiring) error{wireSandbox, wireMessaging, wireDevices, wireOps, wireKeyBackup} {
		if err := wire(ctx, w); err != nil {
			return err
		}
	}
	if w.GatewayAuth == nil {
		w.GatewayAuth = auth.NewGatewayToken(w.Token)
	}
	if w.API.Token == nil {
		w.API.Token = func() string { t, _ := w.CurrentToken(); return t }
	}
	svc := api.New(w.API)
	srv, err := server.New(server.Config{
		Name:         auth.IDGateway,
		Addr:         ld.Base.Addr,
		TLS:          ld.TLS.ServerConfig(tls.VerifyClientCertIfGiven),
		Auth:         &auth.Authenticator{Verifier: testOnlyVerifier(auth.NewClientPort(w.GatewayAuth, ld.Tokens)), Limiter: auth.NewLimiter(), Self: auth.IDGateway, OnEvent: seclog.AuthRecorder(w.SecLog)},
		Authz:        api.Authz(),
		Logger:       ld.Logger,
		StreamGuards: []grpc.StreamServerInterceptor{w.GatewayAuth.StreamGuard()},
		Version:      o.Version,
		StartedAt:    w.API.StartedAt,
		Register: func(r grpc.ServiceRegistrar) {
			api.RegisterService(r, svc)
			for _, reg := range w.Register {
				reg(r)
			}
		},
	})
	if err != nil {
		return err
	}
	if err := serveControlUI(ctx, w, svc); err != nil {
		return err
	}
	for _, bg := range w.Background {
		go bg(ctx)
	}
	go reloadOnSIGHUP(ctx, w)
	ld.Logger.Info("gateway auth", "mode", "token", "token_source", w.TokenSource, "strength", auth.DescribeToken(w.Token))
	return srv.Run(ctx)
}
