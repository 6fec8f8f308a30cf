package app

import (
	"context"

	secretsv1 "github.com/moltbot/moltbot-secure/proto/secrets/v1"
)

// wireKeyBackup serves `security key export|import` through secretsd. Whoever
// seals gateway-internal data (the security log's HMAC key) appends its
// api.Resealer to w.API.KeyBackup.Resealers; the events go through
// w.API.Secrets.OnEvent like key rotation's.
func wireKeyBackup(_ context.Context, w *Wiring) error {
	w.API.KeyBackup.Secrets = secretsv1.NewSecretsClient(w.SecretsConn)
	return nil
}
