// Package api is the gateway's gRPC layer: thin handlers over the gateway's
// local logic (STYLE.md: Config -> New -> RegisterService).
package api

import (
	"context"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// Dependency is one internal service the gateway talks to.
type Dependency struct {
	Name string
	Addr string
	Conn grpc.ClientConnInterface
}

// Config holds the gateway's dependencies.
type Config struct {
	Version   string
	StartedAt time.Time
	Deps      []Dependency
	// Token returns the current gateway token (for the strength report only).
	Token  func() string
	Logger hclog.Logger

	Secrets   SecretsDeps
	Messaging MessagingDeps
	Ops       OpsDeps
	KeyBackup KeyBackupDeps
	Devices   DevicesDeps
}

// Service implements gatewayv1.GatewayServer.
type Service struct {
	gatewayv1.UnsafeGatewayServer
	cfg Config
}

var _ gatewayv1.GatewayServer = (*Service)(nil)

// New returns the service.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	return &Service{cfg: cfg}
}

// RegisterService registers s on r.
func RegisterService(r grpc.ServiceRegistrar, s *Service) { gatewayv1.RegisterGatewayServer(r, s) }

// Status reports the gateway and the health of every dependency.
func (s *Service) Status(ctx context.Context, req *gatewayv1.StatusRequest) (*gatewayv1.StatusResponse, error) {
	resp := &gatewayv1.StatusResponse{
		AuthMode:      "token",
		TokenStrength: auth.DescribeToken(s.cfg.Token()),
		Services: []*gatewayv1.ServiceStatus{{
			Name: "gateway", Up: true, Version: s.cfg.Version, StartedAt: timestamppb.New(s.cfg.StartedAt),
		}},
	}
	for _, d := range s.cfg.Deps {
		st := probe(ctx, d)
		if d.Name == auth.IDSandboxd && st.GetUp() {
			s.sandboxUsable(ctx, st, resp)
		}
		resp.Services = append(resp.Services, st)
	}
	if req.GetAll() {
		s.statusAll(ctx, resp)
		resp.ControlUiUrl = s.cfg.Devices.URL
	}
	return resp, nil
}

func probe(ctx context.Context, d Dependency) *gatewayv1.ServiceStatus {
	st := &gatewayv1.ServiceStatus{Name: d.Name, Address: d.Addr}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var md metadata.MD
	r, err := healthpb.NewHealthClient(d.Conn).Check(ctx, &healthpb.HealthCheckRequest{}, probeOpts(&md)...)
	if v := md.Get("moltbot-version"); len(v) > 0 {
		st.Version = v[0]
	}
	if v := md.Get("moltbot-started"); len(v) > 0 {
		if t, perr := time.Parse(time.RFC3339, v[0]); perr == nil {
			st.StartedAt = timestamppb.New(t)
		}
	}
	switch {
	case err != nil:
		st.Error = errs.Text(err)
	case r.GetStatus() != healthpb.HealthCheckResponse_SERVING:
		st.Error = r.GetStatus().String()
	default:
		st.Up = true
	}
	return st
}
