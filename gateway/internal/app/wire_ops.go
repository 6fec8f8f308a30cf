package app

import (
	"context"
	"errors"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/moltbot/moltbot-secure/gateway/internal/agent"
	"github.com/moltbot/moltbot-secure/gateway/internal/auditrun"
	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	sandboxv1 "github.com/moltbot/moltbot-secure/proto/sandbox/v1"
	secretsv1 "github.com/moltbot/moltbot-secure/proto/secrets/v1"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/pkiinit"
	"github.com/moltbot/moltbot-secure/services/seclog"
	"github.com/moltbot/moltbot-secure/services/tlsutil"
)

// wireOps sets up status --all, the security log, cert rotation, reload and audit.
func wireOps(_ context.Context, w *Wiring) error {
	pki := w.Loaded.Base.PKIDir
	o := &w.API.Ops
	o.PKIDir = pki
	o.SecLog = w.SecLog
	o.Secrets = secretsv1.NewSecretsClient(w.SecretsConn)
	o.Sandbox = sandboxv1.NewSandboxClient(w.SandboxConn)
	// Single-host installs keep the CA key next to the gateway's certs; in
	// compose the gateway cannot read it and rotation runs in `init`.
	if f, err := os.Open(tlsutil.CAKeyFile(pki)); err == nil {
		f.Close()
		o.RotateCerts = func(ca bool) error {
			_, err := pkiinit.Rotate(pki, ca, time.Now())
			return err
		}
	}
	var decrypted func(context.Context) ([]config.Problem, error)
	if w.Config != nil {
		decrypted = w.Config.CheckDecrypted
	}
	o.Audit = auditrun.New(auditrun.Config{
		StateDir:   w.StateDir,
		ConfigPath: w.ConfigPath,
		PKIDir:     pki,
		Secrets:    o.Secrets,
		Writer:     storeWriter{w},
		Token:      w.CurrentToken,
		Decrypted:  decrypted,
		Prober: &auditrun.Prober{
			Gateway: auditrun.Endpoint{Name: auth.IDGateway, Addr: dialable(w.Loaded.Base.Addr), ServerName: auth.IDGateway},
			Internal: []auditrun.Endpoint{
				{Name: auth.IDSecretsd, Addr: w.Opts.SecretsAddr, ServerName: auth.IDSecretsd},
				{Name: auth.IDPairingd, Addr: w.Opts.PairingAddr, ServerName: auth.IDPairingd},
				{Name: auth.IDSandboxd, Addr: w.Opts.SandboxAddr, ServerName: auth.IDSandboxd},
			},
			CAFile:       tlsutil.FilesFor(pki, auth.IDGateway).CA,
			Secrets:      o.Secrets,
			Sandbox:      o.Sandbox,
			GatewayToken: func() string { t, _ := w.CurrentToken(); return t },
			UI:           uiProbe(w),
			SelfTLS:      w.Loaded.TLS.ClientConfig(auth.IDGateway),
			SandboxPolicy: func() *sandboxv1.Policy {
				if w.Config == nil || w.Config.Current() == nil {
					return nil
				}
				p, err := agent.PolicyFromConfig(w.Config.Current().Config)
				if err != nil {
					return nil
				}
				return p
			},
		},
	}).Audit
	o.PairingStatus = w.API.Messaging.PairingStatus
	o.ChannelsStatus = w.API.Messaging.ChannelsStatus
	o.Reload = func(ctx context.Context) (*gatewayv1.ReloadResponse, error) { return reload(ctx, w) }
	o.ConfigWarnings = func() []string {
		var out []string
		if w.Config != nil && w.Config.Current() != nil {
			for _, p := range w.Config.Current().Warnings {
				out = append(out, p.String())
			}
		}
		return out
	}
	o.SandboxMode = func() string {
		if w.Config != nil && w.Config.Current() != nil {
			if m := w.Config.Current().View.Agents.Sandbox.Mode; m != "" {
				return m
			}
		}
		return "non-main"
	}
	w.gatewayAuth().OnSwap(seclog.TokenRotated(w.SecLog))
	return nil
}

// gatewayAuth is the client port's token check, made once: reload swaps
// its token and the security log records each swap.
func (w *Wiring) gatewayAuth() *auth.GatewayToken {
	if w.GatewayAuth == nil {
		w.GatewayAuth = auth.NewGatewayToken(w.Token)
	}
	return w.GatewayAuth
}

// storeWriter lets audit fixes write through the config store.
type storeWriter struct{ w *Wiring }

func (s storeWriter) Set(ctx context.Context, path, value string, valueIsString, unset bool) error {
	if s.w.Config == nil {
		return errors.New("config store not loaded")
	}
	_, err := s.w.Config.Set(ctx, path, value, valueIsString, unset)
	return err
}

// dialable turns a listen address into one the gateway can dial itself.
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// reload is runtime.Reloader's answer in the API's terms.
func reload(ctx context.Context, w *Wiring) (*gatewayv1.ReloadResponse, error) {
	if w.Reloader == nil {
		return nil, errors.New("config store not loaded")
	}
	res, err := w.Reloader.Reload(ctx)
	if err != nil {
		return nil, err
	}
	resp := &gatewayv1.ReloadResponse{Applied: res.Applied, Changes: res.Changes}
	for _, p := range res.Problems {
		resp.Problems = append(resp.Problems, &gatewayv1.Problem{Path: p.Path, Message: p.Message, Fix: p.Fix, Severity: string(p.Severity), File: p.File, Line: int32(p.Line)})
	}
	return resp, nil
}

func reloadOnSIGHUP(ctx context.Context, w *Wiring) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	defer signal.Stop(ch)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			resp, err := reload(ctx, w)
			switch {
			case err != nil:
				w.Logger.Error("SIGHUP reload failed", "error", err)
			case !resp.GetApplied():
				w.Logger.Warn("SIGHUP reload refused", "problems", len(resp.GetProblems()))
			default:
				w.Logger.Info("SIGHUP reload applied", "changes", len(resp.GetChanges()))
			}
		}
	}
}
