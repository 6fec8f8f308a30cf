package app

import (
	"context"
	"os"
	"time"

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
	if w.GatewayAuth != nil {
		w.GatewayAuth.OnSwap(func(gen uint64) {
			w.SecLog.Record(seclog.Event{Kind: "token.rotate", Actor: auth.IDGateway})
		})
	}
	return nil
}
