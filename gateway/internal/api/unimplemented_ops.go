package api

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
)

// Not built yet: these answer Unimplemented until their capability lands.

// Audit is not built yet (security audit).
func (s *Service) Audit(context.Context, *gatewayv1.AuditRequest) (*gatewayv1.AuditResponse, error) {
	return nil, status.Error(codes.Unimplemented, "Audit is not available yet")
}

// Reload is not built yet (gateway operations).
func (s *Service) Reload(context.Context, *gatewayv1.ReloadRequest) (*gatewayv1.ReloadResponse, error) {
	return nil, status.Error(codes.Unimplemented, "Reload is not available yet")
}

// RotateCerts is not built yet (gateway operations).
func (s *Service) RotateCerts(context.Context, *gatewayv1.RotateCertsRequest) (*gatewayv1.RotateCertsResponse, error) {
	return nil, status.Error(codes.Unimplemented, "RotateCerts is not available yet")
}

// SecurityLog is not built yet (gateway operations).
func (s *Service) SecurityLog(*gatewayv1.SecurityLogRequest, gatewayv1.Gateway_SecurityLogServer) error {
	return status.Error(codes.Unimplemented, "SecurityLog is not available yet")
}
