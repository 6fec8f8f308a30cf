package app

import (
	"context"

	"github.com/moltbot/moltbot-secure/gateway/internal/api"
	secretsv1 "github.com/moltbot/moltbot-secure/proto/secrets/v1"
)

// wireKeyBackup serves `security key export|import` through secretsd. The
// security log's key is sealed gateway-internal data: it is carried across
// an import (unsealed before, resealed after).
func wireKeyBackup(_ context.Context, w *Wiring) error {
	w.API.KeyBackup.Secrets = secretsv1.NewSecretsClient(w.SecretsConn)
	if w.SecKey != nil {
		w.API.KeyBackup.Resealers = append(w.API.KeyBackup.Resealers, api.Resealer(w.SecKey.AcrossImport()))
	}
	return nil
}
