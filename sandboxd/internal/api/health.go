package api

import (
	"context"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/moltbot/moltbot-secure/sandboxd/internal/sandbox"
)

// HealthService is the grpc.health.v1 service name that is SERVING only
// while Docker answers and the default image exists. The overall "" status
// stays SERVING so the stack starts and can report the problem.
const HealthService = "sandbox"

// WatchHealth keeps the "sandbox" health status in step with Docker and the
// image, logging each change once with the fix.
func WatchHealth(ctx context.Context, svc *sandbox.Service, hs *health.Server, log hclog.Logger, every time.Duration) {
	hs.SetServingStatus(HealthService, healthpb.HealthCheckResponse_NOT_SERVING)
	last := ""
	for {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		in := svc.Info(cctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		st, problem := healthpb.HealthCheckResponse_SERVING, ""
		if !in.DockerReachable || !in.ImagePresent {
			st, problem = healthpb.HealthCheckResponse_NOT_SERVING, in.DockerError
		}
		hs.SetServingStatus(HealthService, st)
		if problem != last {
			if problem != "" {
				log.Error("sandboxing unavailable; every /exec is refused", "problem", problem)
			} else {
				log.Info("sandboxing available", "docker_api", in.APIVersion, "image", in.Image)
			}
			last = problem
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}
