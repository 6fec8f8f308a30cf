package app

import (
	"context"
	"path/filepath"

	"github.com/moltbot/moltbot-secure/gateway/internal/configstore"
	"github.com/moltbot/moltbot-secure/gateway/internal/seckey"
	pairingv1 "github.com/moltbot/moltbot-secure/proto/pairing/v1"
	secretsv1 "github.com/moltbot/moltbot-secure/proto/secrets/v1"
	"github.com/moltbot/moltbot-secure/services/seclog"
)

// wireSecrets loads the config (waiting for secretsd, decrypting every
// secret, failing closed) and the gateway token, and serves the config RPCs.
func wireSecrets(ctx context.Context, w *Wiring) error {
	sec := configstore.SecretsClient{C: secretsv1.NewSecretsClient(w.SecretsConn)}
	cfg := configstore.Config{
		Path:     w.ConfigPath,
		StateDir: w.StateDir,
		PKIDir:   w.Loaded.Base.PKIDir,
		Secrets:  sec,
		Pairing:  configstore.PairingImporter{C: pairingv1.NewPairingClient(w.PairingConn)},
		Logger:   w.Logger.Named("config"),
	}
	waiter, err := configstore.New(cfg)
	if err != nil {
		return err
	}
	if err := waiter.WaitForSecretsd(ctx); err != nil {
		return err
	}
	// The security log's key is unsealed once secretsd answers; the store
	// that records into the log is built after it.
	if err := openSecLog(ctx, w, sec); err != nil {
		return err
	}
	cfg.Log = w.SecLog
	cfg.Sealed = []configstore.SealedFile{w.SecKey}
	st, err := configstore.New(cfg)
	if err != nil {
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
	w.API.Secrets.Files = sec
	w.API.Secrets.Log = w.SecLog
	return nil
}

// openSecLog unseals (or on first start makes and seals) the log's key and
// opens the keyed log in <state>/logs.
func openSecLog(ctx context.Context, w *Wiring, sec seckey.Sealer) error {
	dir := filepath.Join(w.StateDir, "logs")
	w.SecKey = seckey.New(dir, sec)
	key, created, err := w.SecKey.LoadOrCreate(ctx)
	if err != nil {
		return err
	}
	if created {
		w.Logger.Info("security log key created and sealed by secretsd", "file", w.SecKey.Path())
	}
	open := seclog.Open
	if created { // only a first keyed start can find an older version's unkeyed log
		open = seclog.OpenUpgrade
	}
	sl, err := open(dir, key)
	clear(key)
	if err != nil {
		return err
	}
	if a := sl.Archived(); a != "" {
		w.Logger.Warn("security log: the previous log was not verifiable under the sealed key; kept aside, a new keyed chain starts", "archived", filepath.Join(dir, a))
	}
	w.SecLog = sl
	w.Closers = append(w.Closers, func() { _ = sl.Close() })
	return nil
}
