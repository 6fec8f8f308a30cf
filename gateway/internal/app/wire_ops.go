package app

import (
	"context"
	"errors"
	"net"
	"os"
	"time"

	"github.com/moltbot/moltbot-secure/gateway/internal/auditrun"
	sandboxv1 "github.com/moltbot/moltbot-secure/proto/sandbox/v1"
	secretsv1 "github.com/moltbot/moltbot-secure/proto/secrets/v1"
	"github.com/moltbot/moltbot-secure/services/auth"
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
	o.Audit = auditrun.New(auditrun.Config{
		StateDir:   w.StateDir,
		ConfigPath: w.ConfigPath,
		PKIDir:     pki,
		Secrets:    o.Secrets,
		Writer:     storeWriter{w},
		Token:      func() (string, string) { return w.Token, w.TokenSource },
		Prober: &auditrun.Prober{
			Gateway: auditrun.Endpoint{Name: auth.IDGateway, Addr: dialable(w.Loaded.Base.Addr), ServerName: auth.IDGateway},
			Internal: []auditrun.Endpoint{
				{Name: auth.IDSecretsd, Addr: w.Opts.SecretsAddr, ServerName: auth.IDSecretsd},
				{Name: auth.IDPairingd, Addr: w.Opts.PairingAddr, ServerName: auth.IDPairingd},
				{Name: auth.IDSandboxd, Addr: w.Opts.SandboxAddr, ServerName: auth.IDSandboxd},
			},
			CAFile:  tlsutil.FilesFor(pki, auth.IDGateway).CA,
			Secrets: o.Secrets,
			Sandbox: o.Sandbox,
		},
	}).Audit
	if w.GatewayAuth != nil {
		w.GatewayAuth.OnSwap(func(gen uint64) {
			w.SecLog.Record(seclog.Event{Kind: "token.rotate", Actor: auth.IDGateway})
		})
	}
	return nil
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
