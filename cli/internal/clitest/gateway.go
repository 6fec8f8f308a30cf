// Package clitest runs a stand-in gateway for CLI tests: the real server
// bootstrap (services/server) with the client port's verifier over real
// mTLS and a PKI made by pkiinit, around a fake Gateway service, so a test
// drives a command through cmdutil.Factory exactly as a user would.
package clitest

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"

	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/client"
	"github.com/moltbot/moltbot-secure/services/pkiinit"
	"github.com/moltbot/moltbot-secure/services/server"
)

// Gateway is a running stand-in.
type Gateway struct {
	Addr string
	PKI  string // the full PKI (every identity)
}

// StartGateway serves svc behind auth.ClientPort with table (method ->
// roles), as the real gateway does, on 127.0.0.1.
func StartGateway(t *testing.T, svc gatewayv1.GatewayServer, table auth.Table) *Gateway {
	t.Helper()
	pki := filepath.Join(t.TempDir(), "pki")
	if _, err := pkiinit.Init(pkiinit.Options{PKIDir: pki}); err != nil {
		t.Fatal(err)
	}
	ld, err := server.Base{Name: auth.IDGateway, PKIDir: pki, StateDir: t.TempDir(), LogLevel: "error"}.Load()
	if err != nil {
		t.Fatal(err)
	}
	gwTok, err := client.ReadToken(filepath.Join(pki, pkiinit.GatewayTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{
		Name:     auth.IDGateway,
		TLS:      ld.TLS.ServerConfig(tls.VerifyClientCertIfGiven),
		Auth:     &auth.Authenticator{Verifier: auth.NewClientPort(auth.NewGatewayToken(gwTok), ld.Tokens), Limiter: auth.NewLimiter()},
		Authz:    table,
		Logger:   hclog.NewNullLogger(),
		Listener: lis,
		Register: func(r grpc.ServiceRegistrar) { gatewayv1.RegisterGatewayServer(r, svc) },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return &Gateway{Addr: lis.Addr().String(), PKI: pki}
}

// OwnerBundle is the owner's host bundle (CA, cli cert and key, cli.token
// and the gateway token), as `certs init --export` leaves it.
var OwnerBundle = []string{"ca.pem", "cli.pem", "cli-key.pem", "cli.token", pkiinit.GatewayTokenFile}

// ClientBundle is what a client holds: the CA and the gateway token.
var ClientBundle = []string{"ca.pem", pkiinit.GatewayTokenFile}

// StateDir returns a fresh state dir whose pki/ holds files from g's PKI.
func (g *Gateway) StateDir(t *testing.T, files []string) string {
	t.Helper()
	dir := t.TempDir()
	pki := filepath.Join(dir, "pki")
	if err := os.MkdirAll(pki, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, n := range files {
		b, err := os.ReadFile(filepath.Join(g.PKI, n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(pki, n), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
