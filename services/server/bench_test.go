package server_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	secretsv1 "github.com/moltbot/moltbot-secure/proto/secrets/v1"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/client"
	"github.com/moltbot/moltbot-secure/services/pkiinit"
	"github.com/moltbot/moltbot-secure/services/seclog"
	"github.com/moltbot/moltbot-secure/services/server"
	"github.com/moltbot/moltbot-secure/services/tlsutil"
)

// BenchmarkChain compares a unary call through the full interceptor chain
// (recovery, logging at info to a discarding writer, auth, authorization,
// error mapping) with the same call on a bare mTLS server, 16 callers.
// Authentication records to a real security log as the gateway's does
// (seclog.AuthRecorder: one auth.success per connection and identity, the
// connection marked by auth.MarkConns on the server). make bench reports
// chain/bare; the target is a cost <= 5 %.
func BenchmarkChain(b *testing.B) {
	pki := filepath.Join(b.TempDir(), "pki")
	if _, err := pkiinit.Init(pkiinit.Options{PKIDir: pki}); err != nil {
		b.Fatal(err)
	}
	srvSrc, err := tlsutil.NewSource(tlsutil.FilesFor(pki, auth.IDSecretsd))
	if err != nil {
		b.Fatal(err)
	}
	ld, err := server.Base{Name: auth.IDSecretsd, PKIDir: pki, StateDir: b.TempDir(), LogLevel: "info"}.Load()
	if err != nil {
		b.Fatal(err)
	}
	logger := hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: io.Discard})
	key := make([]byte, seclog.KeySize)
	if _, err := rand.Read(key); err != nil {
		b.Fatal(err)
	}
	slog, err := seclog.Open(b.TempDir(), key)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = slog.Close() })
	tok, _ := client.ReadToken(server.TokenFile(pki, auth.IDGateway))
	cliSrc, _ := tlsutil.NewSource(tlsutil.FilesFor(pki, auth.IDGateway))

	bare := func() string {
		lis, _ := net.Listen("tcp", "127.0.0.1:0")
		g := grpc.NewServer(grpc.Creds(credentials.NewTLS(srvSrc.ServerConfig(tls.RequireAndVerifyClientCert))))
		secretsv1.RegisterSecretsServer(g, statusSvc{})
		go g.Serve(lis)
		b.Cleanup(g.Stop)
		return lis.Addr().String()
	}
	chain := func() string {
		lis, _ := net.Listen("tcp", "127.0.0.1:0")
		srv, err := server.New(server.Config{
			Name: auth.IDSecretsd, TLS: srvSrc.ServerConfig(tls.RequireAndVerifyClientCert), Listener: lis, Logger: logger,
			Auth:     &auth.Authenticator{Verifier: ld.Tokens, Limiter: auth.NewLimiter(), OnEvent: seclog.AuthRecorder(slog)},
			Authz:    auth.Table{secretsv1.Secrets_Status_FullMethodName: {auth.IDGateway}},
			Register: func(r grpc.ServiceRegistrar) { secretsv1.RegisterSecretsServer(r, statusSvc{}) },
		})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		go srv.Run(ctx)
		b.Cleanup(cancel)
		return lis.Addr().String()
	}
	ranChain := false
	for _, tc := range []struct {
		name string
		addr func() string
	}{{"bare", bare}, {"chain", chain}} {
		b.Run(tc.name, func(b *testing.B) {
			if tc.name == "chain" {
				ranChain = true
			}
			// The timer includes the dial and the first call: the
			// connection's one security-log write is part of the cost.
			cc, err := client.Dial(tc.addr(), cliSrc.ClientConfig(auth.IDSecretsd), tok)
			if err != nil {
				b.Fatal(err)
			}
			defer cc.Close()
			c := secretsv1.NewSecretsClient(cc)
			if _, err := c.Status(context.Background(), &secretsv1.StatusRequest{}); err != nil {
				b.Fatal(err)
			}
			b.SetParallelism(8) // x GOMAXPROCS(2) = 16 callers
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.Status(context.Background(), &secretsv1.StatusRequest{}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
	if !ranChain {
		return
	}
	// The chain side must have written its successes to the log.
	if err := slog.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	n := 0
	if err := slog.Lines(func(_ int, raw string) {
		if strings.Contains(raw, `"auth.success"`) {
			n++
		}
	}); err != nil {
		b.Fatal(err)
	}
	if n == 0 {
		b.Fatal("no auth.success in the security log: the chain side did not record authentication")
	}
}
