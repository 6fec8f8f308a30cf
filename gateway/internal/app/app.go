// Package app is the gateway's composition root: it loads the config and
// the token, dials the internal services and serves the client port.
package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	"google.golang.org/grpc"

	"github.com/moltbot/moltbot-secure/gateway/internal/api"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/server"
)

// Options are the gateway's flags.
type Options struct {
	Base        server.Base
	SecretsAddr string
	PairingAddr string
	SandboxAddr string
	Version     string
}

// Run loads everything, serves until ctx ends and stops gracefully.
func Run(ctx context.Context, o Options) error {
	ld, err := o.Base.Load()
	if err != nil {
		return err
	}
	cfgPath := configPath(ld.Base.StateDir)
	token, src, err := LoadToken(ld.Base.StateDir, cfgPath, ld.Base.PKIDir)
	if err != nil {
		return err
	}
	if err := auth.CheckToken(token); err != nil {
		return fmt.Errorf("gateway token from %s: %w", src, err)
	}
	gw := auth.NewGatewayToken(token)

	var deps []api.Dependency
	for _, d := range []struct{ id, addr string }{
		{auth.IDSecretsd, o.SecretsAddr}, {auth.IDPairingd, o.PairingAddr}, {auth.IDSandboxd, o.SandboxAddr},
	} {
		cc, err := ld.DialService(d.id, d.addr)
		if err != nil {
			return fmt.Errorf("--%s-addr: %w", d.id, err)
		}
		defer cc.Close()
		deps = append(deps, api.Dependency{Name: d.id, Addr: d.addr, Conn: cc})
	}

	svc := api.New(api.Config{
		Version: o.Version, StartedAt: time.Now(), Deps: deps, Logger: ld.Logger,
		Token: func() string { return token },
	})
	srv, err := server.New(server.Config{
		Name:   auth.IDGateway,
		Addr:   ld.Base.Addr,
		TLS:    ld.TLS.ServerConfig(tls.VerifyClientCertIfGiven),
		Auth:   &auth.Authenticator{Verifier: gw, Limiter: auth.NewLimiter()},
		Authz:  api.Authz(),
		Logger: ld.Logger,
		Register: func(r grpc.ServiceRegistrar) {
			api.RegisterService(r, svc)
		},
	})
	if err != nil {
		return err
	}
	ld.Logger.Info("gateway auth", "mode", "token", "token_source", src, "strength", auth.DescribeToken(token))
	return srv.Run(ctx)
}
