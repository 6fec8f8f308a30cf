package api

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	secretsv1 "github.com/moltbot/moltbot-secure/proto/secrets/v1"
	"github.com/moltbot/moltbot-secure/secretsd/internal/keyring"
	"github.com/moltbot/moltbot-secure/secretsd/internal/secretfiles"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/client"
	"github.com/moltbot/moltbot-secure/services/pkiinit"
	"github.com/moltbot/moltbot-secure/services/server"
	"github.com/moltbot/moltbot-secure/services/tlsutil"
)

// env is a real secretsd (real keyring file, full interceptor chain, strict
// mTLS) on a loopback port.
type env struct {
	pki     string
	addr    string
	keyFile string
	files   string
	kr      *keyring.Keyring
}

func start(tb testing.TB) env {
	tb.Helper()
	dir := tb.TempDir()
	pki := filepath.Join(dir, "pki")
	_, err := pkiinit.Init(pkiinit.Options{PKIDir: pki})
	require.NoError(tb, err)
	b := server.Base{Name: auth.IDSecretsd, Addr: "127.0.0.1:0", PKIDir: pki, StateDir: dir, LogLevel: "error"}
	ld, err := b.Load()
	require.NoError(tb, err)
	keyFile := filepath.Join(dir, "keys", "secrets.key")
	kr, err := keyring.Open(keyring.Config{Store: keyring.NewFileStore(keyFile), ExportWorkFactor: 10})
	require.NoError(tb, err)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	files := filepath.Join(dir, "secret-files")
	require.NoError(tb, os.Mkdir(files, 0o750))
	svc := New(Config{Keyring: kr, Files: secretfiles.New(files), Logger: hclog.NewNullLogger()})
	srv, err := server.New(server.Config{
		Name:     auth.IDSecretsd,
		TLS:      ld.TLS.ServerConfig(tls.RequireAndVerifyClientCert),
		Auth:     &auth.Authenticator{Verifier: ld.Tokens, Limiter: auth.NewLimiter()},
		Authz:    Authz(),
		Logger:   hclog.NewNullLogger(),
		Listener: lis,
		Register: func(r grpc.ServiceRegistrar) { RegisterService(r, svc) },
	})
	require.NoError(tb, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	tb.Cleanup(func() { cancel(); <-done })
	return env{pki: pki, addr: lis.Addr().String(), keyFile: keyFile, files: files, kr: kr}
}

func (e env) conn(tb testing.TB, id string) *grpc.ClientConn {
	tb.Helper()
	src, err := tlsutil.NewSource(tlsutil.FilesFor(e.pki, id))
	require.NoError(tb, err)
	tok, err := client.ReadToken(server.TokenFile(e.pki, id))
	require.NoError(tb, err)
	cc, err := client.Dial(e.addr, src.ClientConfig(auth.IDSecretsd), tok)
	require.NoError(tb, err)
	tb.Cleanup(func() { cc.Close() })
	return cc
}

func (e env) as(tb testing.TB, id string) secretsv1.SecretsClient {
	return secretsv1.NewSecretsClient(e.conn(tb, id))
}

func ctxT(tb testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	tb.Cleanup(cancel)
	return c
}
