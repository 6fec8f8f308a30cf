// Package server is the bootstrap every moltbot daemon uses: an mTLS gRPC
// server with the shared interceptor chain (recovery -> logging -> auth ->
// authorization -> error mapping), grpc.health.v1 as the only
// unauthenticated service, and graceful stop when the context ends.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	grpcauth "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// Config is what a daemon hands the bootstrap.
type Config struct {
	Name   string // service name for logs and health
	Addr   string // listen address, host:port
	TLS    *tls.Config
	Auth   *auth.Authenticator
	Authz  auth.Table
	Logger hclog.Logger
	// Register registers the daemon's services on the server.
	Register func(grpc.ServiceRegistrar)
	// Listener, when set, is used instead of listening on Addr (tests).
	Listener net.Listener
	// StreamGuards run after authorization on streams (e.g. closing
	// streams whose token was rotated).
	StreamGuards []grpc.StreamServerInterceptor
	// Version is reported to health-check callers in the
	// moltbot-version header, with moltbot-started (RFC 3339).
	Version   string
	StartedAt time.Time
}

// Server is a ready-to-run daemon server.
type Server struct {
	cfg    Config
	grpc   *grpc.Server
	health *health.Server
	lis    net.Listener
}

// New validates cfg, listens and builds the server. Errors are one clear line.
func New(cfg Config) (*Server, error) {
	if cfg.TLS == nil {
		return nil, errors.New("server: TLS config is required (plaintext is never served)")
	}
	if cfg.Auth == nil || cfg.Auth.Verifier == nil || cfg.Auth.Limiter == nil {
		return nil, errors.New("server: an authenticator with a verifier and a limiter is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	lis := cfg.Listener
	if lis == nil {
		if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
			return nil, fmt.Errorf("listen address %q is not host:port (example: 0.0.0.0:18790)", cfg.Addr)
		}
		var err error
		lis, err = net.Listen("tcp", cfg.Addr)
		if err != nil {
			return nil, fmt.Errorf("listen on %s: %w", cfg.Addr, err)
		}
	}
	g := grpc.NewServer(Options(cfg)...)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(g, hs)
	if cfg.Register != nil {
		cfg.Register(g)
	}
	return &Server{cfg: cfg, grpc: g, health: hs, lis: lis}, nil
}

// Options returns the grpc.ServerOptions of the shared chain; New uses
// them, and the benchmarks measure them against a bare server.
func Options(cfg Config) []grpc.ServerOption {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	rec := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		cfg.Logger.Error("panic in handler", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error")
	})
	if cfg.StartedAt.IsZero() {
		cfg.StartedAt = time.Now()
	}
	streams := []grpc.StreamServerInterceptor{
		recovery.StreamServerInterceptor(rec),
		logStream(cfg.Logger),
		streamSkipHealth(grpcauth.StreamServerInterceptor(cfg.Auth.AuthFunc)),
		streamSkipHealth(cfg.Authz.StreamInterceptor()),
	}
	streams = append(streams, cfg.StreamGuards...)
	streams = append(streams, errorStream(cfg.Logger))
	return []grpc.ServerOption{
		// Marks each connection so a success is recorded once per connection.
		grpc.Creds(auth.MarkConns(credentials.NewTLS(cfg.TLS))),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.MaxRecvMsgSize(4 << 20),
		// Reused workers keep their grown stacks: with a goroutine per call,
		// the interceptor chain's depth made every call grow a fresh stack
		// (about 15 % of secretsd's CPU in a profile).
		grpc.NumStreamWorkers(uint32(4 * runtime.GOMAXPROCS(0))),
		grpc.ChainUnaryInterceptor(
			recovery.UnaryServerInterceptor(rec),
			versionHeader(cfg.Version, cfg.StartedAt),
			logUnary(cfg.Logger),
			unarySkipHealth(grpcauth.UnaryServerInterceptor(cfg.Auth.AuthFunc)),
			unarySkipHealth(cfg.Authz.UnaryInterceptor()),
			errorUnary(cfg.Logger),
		),
		grpc.ChainStreamInterceptor(streams...),
	}
}

// Health exposes the health server so daemons can report NOT_SERVING when a
// dependency (Docker, secretsd) is missing.
func (s *Server) Health() *health.Server { return s.health }

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.lis.Addr() }

// GRPC returns the underlying server (tests).
func (s *Server) GRPC() *grpc.Server { return s.grpc }

// Run serves until ctx ends, then stops gracefully (in-flight calls finish,
// bounded by a grace period).
func (s *Server) Run(ctx context.Context) error {
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.health.SetServingStatus(s.cfg.Name, healthpb.HealthCheckResponse_SERVING)
	errc := make(chan error, 1)
	go func() { errc <- s.grpc.Serve(s.lis) }()
	s.cfg.Logger.Info("serving", "addr", s.lis.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", s.lis.Addr(), err)
	case <-ctx.Done():
	}
	s.health.Shutdown()
	done := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		s.grpc.Stop()
	}
	s.cfg.Logger.Info("stopped")
	return nil
}

// versionHeader tells health-check callers (the gateway's status) which
// version runs and since when; nothing else is revealed unauthenticated.
func versionHeader(version string, started time.Time) grpc.UnaryServerInterceptor {
	md := metadata.Pairs("moltbot-version", version, "moltbot-started", started.UTC().Format(time.RFC3339))
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if info.FullMethod == healthpb.Health_Check_FullMethodName {
			_ = grpc.SetHeader(ctx, md)
		}
		return h(ctx, req)
	}
}

// errorUnary maps domain errors to status codes once, at the edge, and logs
// the cause of anything that becomes Internal.
func errorUnary(l hclog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		resp, err := h(ctx, req)
		if err != nil {
			return resp, toStatus(l, info.FullMethod, err)
		}
		return resp, nil
	}
}

func errorStream(l hclog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if err := h(srv, ss); err != nil {
			return toStatus(l, info.FullMethod, err)
		}
		return nil
	}
}

func toStatus(l hclog.Logger, method string, err error) error {
	st := errs.ToStatus(err)
	if status.Code(st) == codes.Internal {
		if _, isStatus := status.FromError(err); !isStatus {
			l.Error("internal error", "method", method, "error", err.Error())
		}
	}
	return st
}

func splitHostPort(addr string) (string, string, error) { return net.SplitHostPort(addr) }

// HealthPrefix is the one service that needs neither token nor identity
// (grpc.health.v1; server_test checks it against the generated name).
const HealthPrefix = "/grpc.health.v1.Health/"

// unarySkipHealth runs ic for every method but grpc.health.v1. It does the
// selector middleware's job with a prefix test: the selector builds a
// CallMeta (allocations, string splits) per interceptor per call, which
// showed in secretsd's profile.
func unarySkipHealth(ic grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if strings.HasPrefix(info.FullMethod, HealthPrefix) {
			return h(ctx, req)
		}
		return ic(ctx, req, info, h)
	}
}

func streamSkipHealth(ic grpc.StreamServerInterceptor) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if strings.HasPrefix(info.FullMethod, HealthPrefix) {
			return h(srv, ss)
		}
		return ic(srv, ss, info, h)
	}
}
