package api

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
)

// Not built yet: these answer Unimplemented until their capability lands.

// Send is not built yet (DM pairing).
func (s *Service) Send(context.Context, *gatewayv1.SendRequest) (*gatewayv1.SendResponse, error) {
	return nil, status.Error(codes.Unimplemented, "Send is not available yet")
}

// ListSessions is not built yet (gateway operations).
func (s *Service) ListSessions(context.Context, *gatewayv1.ListSessionsRequest) (*gatewayv1.ListSessionsResponse, error) {
	return nil, status.Error(codes.Unimplemented, "ListSessions is not available yet")
}
