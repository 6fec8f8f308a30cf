package api

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
)

// Not built yet: these answer Unimplemented until their capability lands.

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

// Migrate is not built yet (secrets at rest).
func (s *Service) Migrate(context.Context, *gatewayv1.MigrateRequest) (*gatewayv1.MigrateResponse, error) {
	return nil, status.Error(codes.Unimplemented, "Migrate is not available yet")
}

// Rollback is not built yet (secrets at rest).
func (s *Service) Rollback(context.Context, *gatewayv1.RollbackRequest) (*gatewayv1.RollbackResponse, error) {
	return nil, status.Error(codes.Unimplemented, "Rollback is not available yet")
}

// RotateKey is not built yet (secrets at rest).
func (s *Service) RotateKey(context.Context, *gatewayv1.RotateKeyRequest) (*gatewayv1.RotateKeyResponse, error) {
	return nil, status.Error(codes.Unimplemented, "RotateKey is not available yet")
}
