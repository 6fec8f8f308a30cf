package api

import (
	"context"
	"fmt"
	"time"

	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	secretsv1 "github.com/moltbot/moltbot-secure/proto/secrets/v1"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// Key backup: `moltbot security key export|import`, owner only (Authz),
// forwarded to secretsd, which alone sees key material. The gateway adds
// what secretsd cannot know: its own sealed data must survive an import.

// Resealer holds gateway-internal data sealed by secretsd (an AAD under
// "internal/", e.g. the security log's HMAC key at internal/seclog/hmac-key).
// Sealing such data does not stop an import, so the gateway keeps it valid:
// Unseal before the import (under the old keyring), Reseal after it.
type Resealer interface {
	// Unseal opens the sealed data under the current keyring and keeps the
	// plaintext in memory until Reseal.
	Unseal(ctx context.Context) error
	// Reseal seals the held data under the (new) current keyring and
	// persists it.
	Reseal(ctx context.Context) error
}

// KeyBackupDeps: ExportKey and ImportKey.
type KeyBackupDeps struct {
	// Secrets is secretsd; nil answers FailedPrecondition.
	Secrets secretsv1.SecretsClient
	// Resealers are unsealed before an import and resealed after it; none
	// configured is a no-op.
	Resealers []Resealer
}

// keyBackupTimeout covers age's scrypt (about a second at the default
// cost) with room for a busy machine.
const keyBackupTimeout = 30 * time.Second

func (s *Service) keySecrets() (secretsv1.SecretsClient, error) {
	if s.cfg.KeyBackup.Secrets == nil {
		return nil, fmt.Errorf("key backup is not wired in this gateway: %w", errs.ErrFailedPrecondition)
	}
	return s.cfg.KeyBackup.Secrets, nil
}

// ExportKey returns secretsd's keyring sealed under the owner's passphrase.
func (s *Service) ExportKey(ctx context.Context, req *gatewayv1.ExportKeyRequest) (*gatewayv1.ExportKeyResponse, error) {
	sc, err := s.keySecrets()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, keyBackupTimeout)
	defer cancel()
	r, err := sc.ExportKey(ctx, &secretsv1.ExportKeyRequest{Passphrase: req.GetPassphrase()})
	if err != nil {
		return nil, errs.FromStatus(err)
	}
	// Security log: who exported which keys; never the export itself.
	s.secretsEvent(ctx, "key.export", keyTarget(r.GetPrimaryKid(), len(r.GetKeys())))
	return &gatewayv1.ExportKeyResponse{Sealed: r.GetSealed(), Keys: keyStatuses(r.GetKeys()), PrimaryKid: r.GetPrimaryKid()}, nil
}

// ImportKey replaces secretsd's keyring with an export (secretsd refuses
// when its keyring already protects a user secret), keeping the gateway's
// own sealed data valid around the swap.
func (s *Service) ImportKey(ctx context.Context, req *gatewayv1.ImportKeyRequest) (*gatewayv1.ImportKeyResponse, error) {
	sc, err := s.keySecrets()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, keyBackupTimeout)
	defer cancel()
	// The errors below carry a class so the edge keeps their message (a
	// class-less error would reach the owner as "internal error").
	for i, r := range s.cfg.KeyBackup.Resealers {
		if err := r.Unseal(ctx); err != nil {
			return nil, fmt.Errorf("key import: nothing changed: the gateway's internal sealed data #%d does not open under the current key: %w: %w", i+1, err, errs.ErrFailedPrecondition)
		}
	}
	r, err := sc.ImportKey(ctx, &secretsv1.ImportKeyRequest{Sealed: req.GetSealed(), Passphrase: req.GetPassphrase()})
	if err != nil {
		return nil, errs.FromStatus(err)
	}
	s.secretsEvent(ctx, "key.import", keyTarget(r.GetPrimaryKid(), len(r.GetKeys())))
	resp := &gatewayv1.ImportKeyResponse{Keys: keyStatuses(r.GetKeys()), PrimaryKid: r.GetPrimaryKid(), BackupPath: r.GetBackupPath()}
	for i, rs := range s.cfg.KeyBackup.Resealers {
		if err := rs.Reseal(ctx); err != nil {
			return nil, fmt.Errorf("key import: the key was imported (secretsd kept the old key file at %s), but the gateway's internal sealed data #%d could not be sealed under it; restart the gateway to seal it afresh: %w: %w", r.GetBackupPath(), i+1, err, errs.ErrFailedPrecondition)
		}
		resp.Resealed++
	}
	return resp, nil
}

func keyTarget(primary string, n int) string {
	return fmt.Sprintf("keyring (primary %s, %d keys)", primary, n)
}

func keyStatuses(ks []*secretsv1.KeyInfo) []*gatewayv1.KeyStatus {
	out := make([]*gatewayv1.KeyStatus, 0, len(ks))
	for _, k := range ks {
		out = append(out, &gatewayv1.KeyStatus{Kid: k.GetKid(), Primary: k.GetPrimary(), CreatedAt: k.GetCreatedAt(), Fingerprint: k.GetFingerprint()})
	}
	return out
}
