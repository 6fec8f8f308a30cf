package app

import (
	"context"

	"github.com/moltbot/moltbot-secure/gateway/internal/configstore"
	pairingv1 "github.com/moltbot/moltbot-secure/proto/pairing/v1"
	secretsv1 "github.com/moltbot/moltbot-secure/proto/secrets/v1"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/seclog"
)

// wireSecrets loads the config (waiting for secretsd, decrypting every
// secret, failing closed) and the gateway token, and serves the config RPCs.
func wireSecrets(ctx context.Context, w *Wiring) error {
	st, err := configstore.New(configstore.Config{
		Path:     w.ConfigPath,
		StateDir: w.StateDir,
		PKIDir:   w.Loaded.Base.PKIDir,
		Secrets:  configstore.SecretsClient{C: secretsv1.NewSecretsClient(w.SecretsConn)},
		Pairing:  configstore.PairingImporter{C: pairingv1.NewPairingClient(w.PairingConn)},
		Logger:   w.Logger.Named("config"),
	})
	if err != nil {
		return err
	}
	if err := st.WaitForSecretsd(ctx); err != nil {
		return err
	}
	snap, err := st.Load(ctx)
	if err != nil {
		return err
	}
	for _, p := range snap.Warnings {
		w.Logger.Warn("config", "problem", p.String())
	}
	tok, src, err := LoadToken(snap, w.ConfigPath)
	if err != nil {
		return err
	}
	w.Token, w.TokenSource = tok, src
	w.Config = st
	w.API.Secrets.Config = st
	w.API.Secrets.Files = configstore.SecretsClient{C: secretsv1.NewSecretsClient(w.SecretsConn)}
	w.API.Secrets.OnEvent = func(ctx context.Context, kind, target string) {
		if w.SecLog != nil {
			w.SecLog.Record(seclog.Event{Kind: kind, Actor: callerOf(ctx), Target: target})
		}
	}
	return nil
}

// callerOf names the authenticated caller for the security log.
func callerOf(ctx context.Context) string {
	c, _ := auth.CallerFrom(ctx)
	return firstNonEmpty(c.ID, c.CertID)
}
