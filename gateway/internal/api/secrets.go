package api

import (
	"context"
	"fmt"
	"strings"

	"github.com/moltbot/moltbot-secure/gateway/internal/configstore"
	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/errs"
	"github.com/moltbot/moltbot-secure/services/seclog"
)

// Config ownership: thin handlers over package configstore, which also
// records each write, reveal and rotation in the security log.

func (s *Service) configStore() (*configstore.Store, error) {
	if s.cfg.Secrets.Config == nil {
		return nil, fmt.Errorf("the config store is not wired in this gateway: %w", errs.ErrFailedPrecondition)
	}
	return s.cfg.Secrets.Config, nil
}

// secretsEvent records a decision of these handlers; a failure to record
// is logged (the decision was taken: secretsd answered).
func (s *Service) secretsEvent(ctx context.Context, kind, target string) {
	if err := seclog.Put(s.cfg.Secrets.Log, seclog.Decision(ctx, kind, target, nil)); err != nil {
		s.cfg.Logger.Error("security log: event not recorded", "kind", kind, "error", err.Error())
	}
}

// errRevealMoved refuses the old reveal flag: decrypting is its own
// owner-only method, so a flag on a client-callable method is no way around
// the role table.
var errRevealMoved = fmt.Errorf("reveal: GetConfig never decrypts; call RevealConfig (`moltbot config get --reveal`, owner only): %w", errs.ErrInvalidArgument)

// GetConfig returns a value with secrets shown as "<encrypted>".
func (s *Service) GetConfig(ctx context.Context, req *gatewayv1.GetConfigRequest) (*gatewayv1.GetConfigResponse, error) {
	if req.GetReveal() {
		return nil, errRevealMoved
	}
	return s.getConfig(ctx, req.GetPath(), false)
}

// RevealConfig returns a value with secrets decrypted (owner only, by the
// role table) and records the reveal.
func (s *Service) RevealConfig(ctx context.Context, req *gatewayv1.RevealConfigRequest) (*gatewayv1.RevealConfigResponse, error) {
	r, err := s.getConfig(ctx, req.GetPath(), true)
	if err != nil {
		return nil, err
	}
	return &gatewayv1.RevealConfigResponse{ValueJson: r.GetValueJson()}, nil
}

func (s *Service) getConfig(ctx context.Context, path string, reveal bool) (*gatewayv1.GetConfigResponse, error) {
	st, err := s.configStore()
	if err != nil {
		return nil, err
	}
	v, err := st.Get(ctx, path, reveal)
	if err != nil {
		return nil, err
	}
	return &gatewayv1.GetConfigResponse{ValueJson: v}, nil
}

// SetConfig validates, encrypts secret fields through secretsd, backs up
// (sealed) and writes atomically.
func (s *Service) SetConfig(ctx context.Context, req *gatewayv1.SetConfigRequest) (*gatewayv1.SetConfigResponse, error) {
	st, err := s.configStore()
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(req.GetPath()) == "" {
		return nil, fmt.Errorf("path is empty (example: gateway.auth.token): %w", errs.ErrInvalidArgument)
	}
	res, err := st.Set(ctx, req.GetPath(), req.GetValue(), req.GetValueIsString(), req.GetUnset())
	if err != nil {
		return nil, err
	}
	return &gatewayv1.SetConfigResponse{Encrypted: res.Encrypted, EncryptedPaths: res.EncryptedPaths, BackupPath: res.BackupPath, Warnings: problems(res.Warnings)}, nil
}

// ValidateConfig checks the given text or the file on disk.
func (s *Service) ValidateConfig(ctx context.Context, req *gatewayv1.ValidateConfigRequest) (*gatewayv1.ValidateConfigResponse, error) {
	st, err := s.configStore()
	if err != nil {
		return nil, err
	}
	ps, err := st.Validate(ctx, req.GetConfig())
	if err != nil {
		return nil, err
	}
	return &gatewayv1.ValidateConfigResponse{Valid: len(config.Errors(ps)) == 0, Problems: problems(ps)}, nil
}

// Migrate converts an upstream state dir (see services/migrate).
func (s *Service) Migrate(ctx context.Context, req *gatewayv1.MigrateRequest) (*gatewayv1.MigrateResponse, error) {
	st, err := s.configStore()
	if err != nil {
		return nil, err
	}
	res, err := st.Migrate(ctx, req.GetDryRun())
	if err != nil {
		return nil, err
	}
	return &gatewayv1.MigrateResponse{Actions: res.Actions, Unfixed: problems(res.Unfixed), BackupPath: res.BackupPath, Changed: res.Changed}, nil
}

// RotateKey rotates the secrets key and, with rewrap, re-seals every envelope.
func (s *Service) RotateKey(ctx context.Context, req *gatewayv1.RotateKeyRequest) (*gatewayv1.RotateKeyResponse, error) {
	st, err := s.configStore()
	if err != nil {
		return nil, err
	}
	kid, n, err := st.RotateKey(ctx, req.GetRewrap())
	if err != nil {
		return nil, err
	}
	return &gatewayv1.RotateKeyResponse{NewKid: kid, Rewrapped: int32(n)}, nil
}

// RetireKey drops a key once nothing the gateway keeps is sealed under it.
func (s *Service) RetireKey(ctx context.Context, req *gatewayv1.RetireKeyRequest) (*gatewayv1.RetireKeyResponse, error) {
	st, err := s.configStore()
	if err != nil {
		return nil, err
	}
	n, err := st.RetireKey(ctx, req.GetKid())
	if err != nil {
		return nil, err
	}
	return &gatewayv1.RetireKeyResponse{RetiredKid: req.GetKid(), Checked: int32(n)}, nil
}

func problems(ps []config.Problem) []*gatewayv1.Problem {
	out := make([]*gatewayv1.Problem, len(ps))
	for i, p := range ps {
		out[i] = &gatewayv1.Problem{Path: p.Path, Message: p.Message, Fix: p.Fix, Severity: string(p.Severity), File: p.File, Line: int32(p.Line), Id: p.ID}
	}
	return out
}
