package app

import "context"

// wireSecrets loads the config and the gateway token (secrets at rest).
func wireSecrets(_ context.Context, w *Wiring) error {
	tok, src, err := LoadToken(w.StateDir, w.ConfigPath, w.Loaded.Base.PKIDir)
	if err != nil {
		return err
	}
	w.Token, w.TokenSource = tok, src
	return nil
}
