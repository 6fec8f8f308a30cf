package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"

	"github.com/moltbot/moltbot-secure/gateway/internal/api"
	"github.com/moltbot/moltbot-secure/gateway/internal/configstore"
	"github.com/moltbot/moltbot-secure/gateway/internal/inbox"
	"github.com/moltbot/moltbot-secure/gateway/internal/pairingproxy"
	"github.com/moltbot/moltbot-secure/gateway/internal/pipeline"
	"github.com/moltbot/moltbot-secure/gateway/internal/policy"
	"github.com/moltbot/moltbot-secure/gateway/internal/runtime"
	"github.com/moltbot/moltbot-secure/gateway/internal/sessions"
	pairingv1 "github.com/moltbot/moltbot-secure/proto/pairing/v1"
	secretsv1 "github.com/moltbot/moltbot-secure/proto/secrets/v1"
	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/errs"
	"github.com/moltbot/moltbot-secure/services/seclog"
)

// wireMessaging builds the message runtime (runtime.Manager) from the
// loaded config, hands it to the api and registers the pairing admin proxy.
func wireMessaging(ctx context.Context, w *Wiring) error {
	cfg, err := messagingConfig(w)
	if err != nil {
		return err
	}
	pc := pairingv1.NewPairingClient(w.PairingConn)
	engine, err := policy.New(policy.EngineConfig{Pairing: policy.GRPCPairing{C: pc}})
	if err != nil {
		return err
	}
	st, err := sessions.Open(sessions.Path(w.StateDir), nil)
	if err != nil {
		return err
	}
	w.Closers = append(w.Closers, func() { _ = st.Flush() })
	// Opened before the runtime and closed after it (Closers run in reverse).
	q, err := inbox.Open(inbox.Path(w.StateDir))
	if err != nil {
		return err
	}
	w.Closers = append(w.Closers, func() { _ = q.Close() })
	if w.Agent == nil {
		w.Logger.Warn("no agent is wired: allowed messages will be refused, not answered")
	}
	mgr, err := runtime.NewManager(ctx, runtime.Deps{
		Engine: engine, Sessions: st, Echo: w.Agent, Executor: w.Executor, Logger: w.Logger, Inbox: q,
		OnDecision: runtime.BlockedRecorder(noter(w.SecLog)),
	}, cfg, w.secretOf(w.snapshot()))
	if err != nil {
		return fmt.Errorf("config %s: the gateway will not start: %w", w.ConfigPath, err)
	}
	w.Runtime = mgr
	w.live.Store(mgr)
	w.Closers = append(w.Closers, func() {
		if err := mgr.Close(runtime.DefaultCloseWait); err != nil {
			w.Logger.Warn("stop", "error", err)
		}
	})
	if w.Config != nil {
		w.Reloader = &runtime.Reloader{
			Store: w.Config, Manager: mgr, Secret: w.secretOf, Logger: w.Logger,
			Token: func(snap *configstore.Snapshot) (string, string, error) { return LoadToken(snap, w.ConfigPath) },
			// Made here, before the server, so reload and the client port share it.
			Auth:    w.gatewayAuth(),
			OnToken: w.setToken,
		}
	}
	current := func() *pipeline.Pipeline { return mgr.Current().Pipeline }
	proxy, err := pairingproxy.New(pairingproxy.Config{
		Client: pc, HasChannel: func(n string) bool { return current().HasChannel(n) }, Log: w.SecLog, Logger: w.Logger.Named("pairing"),
		// The verdict of the running runtime's policy (it changes on reload).
		LetThrough: func(channel, sender string) (bool, string, bool) { return current().LetThrough(channel, sender) },
		Notify: func(ctx context.Context, channel, sender string) error {
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			return current().Notify(ctx, channel, sender, policy.ApprovedNotice)
		},
		AddOwner: func(ctx context.Context, channel, sender string) error {
			if w.Reloader == nil {
				return fmt.Errorf("no config store is loaded, so channels.%s.owner cannot be written: %w", channel, errs.ErrFailedPrecondition)
			}
			return w.Reloader.AddOwner(ctx, channel, sender)
		},
	})
	if err != nil {
		return err
	}
	w.API.Messaging = api.MessagingDeps{Pipeline: current, Pairing: pc}
	w.Register = append(w.Register, func(r grpc.ServiceRegistrar) { pairingproxy.RegisterService(r, proxy) })
	w.Logger.Info("messaging", "channels", strings.Join(current().ChannelNames(), ","))
	return nil
}

// snapshot is the config the secrets wiring loaded (secrets decrypted), if any.
func (w *Wiring) snapshot() *configstore.Snapshot {
	if w.Config == nil {
		return nil
	}
	return w.Config.Current()
}

// messagingConfig is the config the channels read: the secrets wiring's
// snapshot, else the file read here; nil when there is no config file (the
// local channel then runs with the defaults).
func messagingConfig(w *Wiring) (*config.Config, error) {
	if snap := w.snapshot(); snap != nil {
		return snap.Config, nil
	}
	c, err := config.Load(w.ConfigPath)
	if errors.Is(err, errs.ErrNotFound) {
		return nil, nil
	}
	return c, err
}

// noter keeps a nil *seclog.Log a nil interface (no log: nothing recorded).
func noter(l *seclog.Log) runtime.Noter {
	if l == nil {
		return nil
	}
	return l
}

// secretOf resolves the secret fields of snap (runtime.Secrets).
func (w *Wiring) secretOf(snap *configstore.Snapshot) runtime.SecretFunc {
	return runtime.Secrets{
		StateDir: w.StateDir, Protected: []string{w.Loaded.Base.PKIDir},
		Decrypt: func(ctx context.Context, env, aad string) ([]byte, error) {
			r, err := secretsv1.NewSecretsClient(w.SecretsConn).Decrypt(ctx, &secretsv1.DecryptRequest{Envelope: env, Aad: aad})
			if err != nil {
				return nil, errs.FromStatus(err)
			}
			return r.GetPlaintext(), nil
		},
	}.For(snap)
}
