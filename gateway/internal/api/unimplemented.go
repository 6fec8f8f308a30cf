package api

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
)

// RPCs whose capability has not landed yet answer Unimplemented explicitly;
// each moves to its own file when built.

// GetConfig is not built yet (secrets at rest).
func (s *Service) GetConfig(context.Context, *gatewayv1.GetConfigRequest) (*gatewayv1.GetConfigResponse, error) {
	return nil, status.Error(codes.Unimplemented, "GetConfig is not available yet")
}

// SetConfig is not built yet (secrets at rest).
func (s *Service) SetConfig(context.Context, *gatewayv1.SetConfigRequest) (*gatewayv1.SetConfigResponse, error) {
	return nil, status.Error(codes.Unimplemented, "SetConfig is not available yet")
}

// ValidateConfig is not built yet (secrets at rest).
func (s *Service) ValidateConfig(context.Context, *gatewayv1.ValidateConfigRequest) (*gatewayv1.ValidateConfigResponse, error) {
	return nil, status.Error(codes.Unimplemented, "ValidateConfig is not available yet")
}

// Audit is not built yet (security audit).
func (s *Service) Audit(context.Context, *gatewayv1.AuditRequest) (*gatewayv1.AuditResponse, error) {
	return nil, status.Error(codes.Unimplemented, "Audit is not available yet")
}

// Migrate is not built yet (secrets at rest).
func (s *Service) Migrate(context.Context, *gatewayv1.MigrateRequest) (*gatewayv1.MigrateResponse, error) {
	return nil, status.Error(codes.Unimplemented, "Migrate is not available yet")
}

// Reload is not built yet (gateway operations).
func (s *Service) Reload(context.Context, *gatewayv1.ReloadRequest) (*gatewayv1.ReloadResponse, error) {
	return nil, status.Error(codes.Unimplemented, "Reload is not available yet")
}

// Send is not built yet (DM pairing).
func (s *Service) Send(context.Context, *gatewayv1.SendRequest) (*gatewayv1.SendResponse, error) {
	return nil, status.Error(codes.Unimplemented, "Send is not available yet")
}

// Rollback is not built yet (secrets at rest).
func (s *Service) Rollback(context.Context, *gatewayv1.RollbackRequest) (*gatewayv1.RollbackResponse, error) {
	return nil, status.Error(codes.Unimplemented, "Rollback is not available yet")
}

// RotateKey is not built yet (secrets at rest).
func (s *Service) RotateKey(context.Context, *gatewayv1.RotateKeyRequest) (*gatewayv1.RotateKeyResponse, error) {
	return nil, status.Error(codes.Unimplemented, "RotateKey is not available yet")
}

// ListSessions is not built yet (gateway operations).
func (s *Service) ListSessions(context.Context, *gatewayv1.ListSessionsRequest) (*gatewayv1.ListSessionsResponse, error) {
	return nil, status.Error(codes.Unimplemented, "ListSessions is not available yet")
}

// RotateCerts is not built yet (gateway operations).
func (s *Service) RotateCerts(context.Context, *gatewayv1.RotateCertsRequest) (*gatewayv1.RotateCertsResponse, error) {
	return nil, status.Error(codes.Unimplemented, "RotateCerts is not available yet")
}

// SecurityLog is not built yet (gateway operations).
func (s *Service) SecurityLog(*gatewayv1.SecurityLogRequest, gatewayv1.Gateway_SecurityLogServer) error {
	return status.Error(codes.Unimplemented, "SecurityLog is not available yet")
}
