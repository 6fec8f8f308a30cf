// Command sandboxd serves the Sandbox API: the only holder of the Docker socket.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"google.golang.org/grpc"

	"github.com/moltbot/moltbot-secure/sandboxd/internal/api"
	"github.com/moltbot/moltbot-secure/sandboxd/internal/backend"
	"github.com/moltbot/moltbot-secure/sandboxd/internal/sandbox"
	"github.com/moltbot/moltbot-secure/services/server"
)

const name = "sandboxd"

// version is set with -ldflags "-X main.version=...".
var version = "dev"

type options struct {
	poolSize    int
	idle        time.Duration
	maxAge      time.Duration
	pruneEvery  time.Duration
	image       string
	instance    string
	healthEvery time.Duration
}

func main() {
	b := server.Base{Name: name, Version: version}
	var o options
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	b.Flags(fs, "0.0.0.0:18792")
	fs.IntVar(&o.poolSize, "pool-size", envInt("MOLTBOT_SANDBOX_POOL_SIZE", 2), "warm containers kept for the default policy (0 disables the pool)")
	fs.DurationVar(&o.idle, "idle", envDuration("MOLTBOT_SANDBOX_IDLE", 24*time.Hour), "prune containers idle longer than this")
	fs.DurationVar(&o.maxAge, "max-age", envDuration("MOLTBOT_SANDBOX_MAX_AGE", 7*24*time.Hour), "prune containers older than this")
	fs.DurationVar(&o.pruneEvery, "prune-every", envDuration("MOLTBOT_SANDBOX_PRUNE_EVERY", time.Hour), "how often to prune (0 disables the loop)")
	fs.StringVar(&o.image, "image", envStr("MOLTBOT_SANDBOX_IMAGE", sandbox.DefaultImage), "default sandbox image (the warm pool's)")
	fs.StringVar(&o.instance, "instance", os.Getenv("MOLTBOT_SANDBOX_INSTANCE"), "label containers with this instance and manage only those (tests)")
	fs.DurationVar(&o.healthEvery, "health-every", 5*time.Second, "how often to check Docker for the \"sandbox\" health status")
	server.Main(&b, fs, func() error { return run(b, o) })
}

func run(b server.Base, o options) error {
	if o.idle <= 0 || o.maxAge <= 0 || o.healthEvery <= 0 {
		return fmt.Errorf("--idle, --max-age and --health-every must be positive durations (example: 24h)")
	}
	ld, err := b.Load()
	if err != nil {
		return err
	}
	log := ld.Logger
	// NewDocker does not contact the engine: a missing socket shows up in
	// Info and in the "sandbox" health status, and sandboxed work is refused.
	be, err := backend.NewDocker(backend.DockerConfig{Logger: log.Named("docker"), Instance: o.instance})
	if err != nil {
		return err
	}
	defer be.Close()
	pool := o.poolSize
	if pool <= 0 {
		pool = -1
	}
	prune := o.pruneEvery
	if prune <= 0 {
		prune = -1
	}
	prefix := "moltbot-sbx"
	if o.instance != "" {
		prefix += "-" + o.instance
	}
	svc, err := sandbox.New(sandbox.Config{Backend: be, Logger: log.Named("sandbox"), PoolSize: pool,
		IdleTimeout: o.idle, MaxAge: o.maxAge, PruneEvery: prune, NamePrefix: prefix,
		Defaults:       sandbox.Policy{Image: o.image},
		WorkspaceIndex: filepath.Join(ld.Base.StateDir, "sandbox-workspaces.json")})
	if err != nil {
		return err
	}
	srv, err := ld.InternalServer(api.Authz(), func(r grpc.ServiceRegistrar) {
		api.RegisterService(r, api.New(api.Config{Sandbox: svc, Logger: log}))
	})
	if err != nil {
		return err
	}
	ctx, cancel := server.SignalContext()
	defer cancel()
	svc.Start(ctx)
	defer svc.Close()
	go api.WatchHealth(ctx, svc, srv.Health(), log, o.healthEvery)
	return srv.Run(ctx)
}

func envStr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func envInt(k string, def int) int {
	if v := os.Getenv(k); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
		server.Exit(name, fmt.Errorf("$%s=%q is not an integer", k, v))
	}
	return def
}

func envDuration(k string, def time.Duration) time.Duration {
	if v := os.Getenv(k); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
		server.Exit(name, fmt.Errorf("$%s=%q is not a duration (example: 24h)", k, v))
	}
	return def
}
