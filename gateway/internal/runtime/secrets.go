package runtime

import (
	"context"
	"fmt"
	"time"

	"github.com/moltbot/moltbot-secure/gateway/internal/configstore"
	"github.com/moltbot/moltbot-secure/services/config"
)

// Secrets resolves the secret fields a runtime needs (a bot token, a
// provider key) from the snapshot it is built from.
type Secrets struct {
	// Decrypt opens an envelope through secretsd, with the field's path as AAD.
	Decrypt func(ctx context.Context, envelope, aad string) ([]byte, error)
	// StateDir and Protected may never be read by a ${file:...} reference.
	StateDir  string
	Protected []string
	// LookupEnv reads ${VAR}; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)
}

// For returns the SecretFunc of snap: the value the config store already
// decrypted, else plaintext, a resolved ${VAR}/${file:...} reference, or
// an envelope decrypted through secretsd. Values never reach a log or an
// error; errors name the field and the fix.
func (s Secrets) For(snap *configstore.Snapshot) SecretFunc {
	return func(ctx context.Context, f config.Secret) (string, error) {
		if v, ok := snap.Secret(f.Path); ok && v != "" {
			return v, nil
		}
		switch f.State {
		case config.StatePlain:
			return f.Plain, nil
		case config.StateReference:
			opts := config.ResolveOptions{StateDir: s.StateDir, Protected: s.Protected, LookupEnv: s.LookupEnv}
			if snap != nil && snap.Config != nil {
				opts.FileRoots = snap.Config.FileRoots()
			}
			v, err := config.ResolveString(f.Ref, opts)
			if err != nil {
				return "", fmt.Errorf("%s: %w", f.Path, err)
			}
			return v, nil
		case config.StateEnvelope:
			if f.Envelope == nil || s.Decrypt == nil {
				return "", fmt.Errorf("%s: malformed encrypted value; set it again with `moltbot config set %s`", f.Path, f.Path)
			}
			text, err := f.Envelope.Encode()
			if err != nil {
				return "", fmt.Errorf("%s: %w", f.Path, err)
			}
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			b, err := s.Decrypt(ctx, text, f.Path)
			if err != nil {
				return "", fmt.Errorf("%s: decrypt through secretsd: %w", f.Path, err)
			}
			return string(b), nil
		}
		return "", fmt.Errorf("%s: not set; the channel needs it (set it with `moltbot config set %s <token>`)", f.Path, f.Path)
	}
}
