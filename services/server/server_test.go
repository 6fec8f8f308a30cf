package server_test

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	secretsv1 "github.com/moltbot/moltbot-secure/proto/secrets/v1"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/client"
	"github.com/moltbot/moltbot-secure/services/pkiinit"
	"github.com/moltbot/moltbot-secure/services/server"
	"github.com/moltbot/moltbot-secure/services/tlsutil"
)

// statusSvc answers Status and panics on Rotate, to exercise recovery.
type statusSvc struct {
	secretsv1.UnimplementedSecretsServer
}

func (statusSvc) Status(context.Context, *secretsv1.StatusRequest) (*secretsv1.StatusResponse, error) {
	return &secretsv1.StatusResponse{PrimaryKid: "k1"}, nil
}

func (statusSvc) Rotate(context.Context, *secretsv1.RotateRequest) (*secretsv1.RotateResponse, error) {
	panic("boom: secret-looking panic value")
}

type env struct {
	pki  string
	addr string
}

// start runs a strict-mTLS server for identity secretsd whose table lets
// the gateway call Status and Rotate and nobody else.
func start(t *testing.T) env { t.Helper(); return startWith(t, nil) }

// startWith is start with an OnEvent hook (the security log's place).
func startWith(t *testing.T, onEvent func(context.Context, auth.Event)) env {
	t.Helper()
	pki := filepath.Join(t.TempDir(), "pki")
	_, err := pkiinit.Init(pkiinit.Options{PKIDir: pki})
	require.NoError(t, err)
	b := server.Base{Name: auth.IDSecretsd, Addr: "127.0.0.1:0", PKIDir: pki, StateDir: t.TempDir(), LogLevel: "error"}
	ld, err := b.Load()
	require.NoError(t, err)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv, err := server.New(server.Config{
		Name:     auth.IDSecretsd,
		TLS:      ld.TLS.ServerConfig(tls.RequireAndVerifyClientCert),
		Auth:     &auth.Authenticator{Verifier: ld.Tokens, Limiter: auth.NewLimiter(), OnEvent: onEvent},
		Authz:    auth.Table{secretsv1.Secrets_Status_FullMethodName: {auth.IDGateway}, secretsv1.Secrets_Rotate_FullMethodName: {auth.IDGateway}},
		Logger:   hclog.NewNullLogger(),
		Listener: lis,
		Register: func(r grpc.ServiceRegistrar) { secretsv1.RegisterSecretsServer(r, statusSvc{}) },
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return env{pki: pki, addr: lis.Addr().String()}
}

func (e env) dialAs(t *testing.T, id, token string) secretsv1.SecretsClient {
	t.Helper()
	src, err := tlsutil.NewSource(tlsutil.FilesFor(e.pki, id))
	require.NoError(t, err)
	cc, err := client.Dial(e.addr, src.ClientConfig(auth.IDSecretsd), token)
	require.NoError(t, err)
	t.Cleanup(func() { cc.Close() })
	return secretsv1.NewSecretsClient(cc)
}

func token(t *testing.T, pki, id string) string {
	t.Helper()
	tok, err := client.ReadToken(server.TokenFile(pki, id))
	require.NoError(t, err)
	return tok
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestChain(t *testing.T) {
	e := start(t)
	tests := []struct {
		name string
		id   string
		tok  func() string
		code codes.Code
	}{
		{"right identity and token", auth.IDGateway, func() string { return token(t, e.pki, auth.IDGateway) }, codes.OK},
		{"no token", auth.IDGateway, func() string { return "" }, codes.Unauthenticated},
		{"wrong token", auth.IDGateway, func() string { return "not-the-token-but-long-enough-0123456789" }, codes.Unauthenticated},
		{"another identity's token", auth.IDGateway, func() string { return token(t, e.pki, auth.IDCLI) }, codes.Unauthenticated},
		{"valid caller not in table", auth.IDPairingd, func() string { return token(t, e.pki, auth.IDPairingd) }, codes.PermissionDenied},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.dialAs(t, tc.id, tc.tok()).Status(ctx(t), &secretsv1.StatusRequest{})
			require.Equal(t, tc.code, status.Code(err), "err: %v", err)
		})
	}
}

func TestPanicBecomesInternalWithoutDetails(t *testing.T) {
	e := start(t)
	_, err := e.dialAs(t, auth.IDGateway, token(t, e.pki, auth.IDGateway)).Rotate(ctx(t), &secretsv1.RotateRequest{})
	require.Equal(t, codes.Internal, status.Code(err))
	require.NotContains(t, err.Error(), "boom")
	require.NotContains(t, err.Error(), "goroutine")
}

func TestHealthNeedsNoTokenButNeedsCert(t *testing.T) {
	e := start(t)
	src, err := tlsutil.NewSource(tlsutil.FilesFor(e.pki, auth.IDCLI))
	require.NoError(t, err)
	cc, err := client.Dial(e.addr, src.ClientConfig(auth.IDSecretsd), "")
	require.NoError(t, err)
	defer cc.Close()
	r, err := healthpb.NewHealthClient(cc).Check(ctx(t), &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, r.GetStatus())

	// No client certificate: the handshake itself is refused.
	caOnly, err := tlsutil.CAOnlyClientConfig(tlsutil.FilesFor(e.pki, auth.IDCLI).CA, auth.IDSecretsd)
	require.NoError(t, err)
	cc2, err := client.Dial(e.addr, caOnly, "")
	require.NoError(t, err)
	defer cc2.Close()
	_, err = healthpb.NewHealthClient(cc2).Check(ctx(t), &healthpb.HealthCheckRequest{})
	require.Equal(t, codes.Unavailable, status.Code(err), "err: %v", err)
}

func TestCertFromAnotherCARefused(t *testing.T) {
	e := start(t)
	other := filepath.Join(t.TempDir(), "pki")
	_, err := pkiinit.Init(pkiinit.Options{PKIDir: other})
	require.NoError(t, err)
	src, err := tlsutil.NewSource(tlsutil.FilesFor(other, auth.IDGateway))
	require.NoError(t, err)
	// Trust the real server (so only the client side is foreign).
	cfg := src.ClientConfig(auth.IDSecretsd)
	real, err := tlsutil.NewSource(tlsutil.FilesFor(e.pki, auth.IDGateway))
	require.NoError(t, err)
	cfg.VerifyConnection = real.ClientConfig(auth.IDSecretsd).VerifyConnection
	cc, err := client.Dial(e.addr, cfg, token(t, e.pki, auth.IDGateway))
	require.NoError(t, err)
	defer cc.Close()
	_, err = secretsv1.NewSecretsClient(cc).Status(ctx(t), &secretsv1.StatusRequest{})
	require.Equal(t, codes.Unavailable, status.Code(err), "err: %v", err)
}

func TestPlaintextRefused(t *testing.T) {
	e := start(t)
	cc, err := grpc.NewClient("passthrough:///"+e.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer cc.Close()
	_, err = healthpb.NewHealthClient(cc).Check(ctx(t), &healthpb.HealthCheckRequest{})
	require.Equal(t, codes.Unavailable, status.Code(err), "err: %v", err)
}

func TestLockoutAfterTenFailures(t *testing.T) {
	e := start(t)
	bad := e.dialAs(t, auth.IDGateway, "wrong-token-wrong-token-wrong-token-x")
	for i := 0; i < 9; i++ {
		_, err := bad.Status(ctx(t), &secretsv1.StatusRequest{})
		require.Equal(t, codes.Unauthenticated, status.Code(err), "attempt %d", i+1)
	}
	var trailer metadata.MD
	_, err := bad.Status(ctx(t), &secretsv1.StatusRequest{}, grpc.Trailer(&trailer))
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "10th failure locks out")
	secs, convErr := strconv.Atoi(first(trailer.Get("retry-after")))
	require.NoError(t, convErr, "retry-after trailer: %v", trailer)
	require.Greater(t, secs, 0)
	// While locked out even the right token is refused: the lockout is no oracle.
	good := e.dialAs(t, auth.IDGateway, token(t, e.pki, auth.IDGateway))
	_, err = good.Status(ctx(t), &secretsv1.StatusRequest{})
	require.Equal(t, codes.ResourceExhausted, status.Code(err))
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func TestHealthPrefixMatchesGeneratedName(t *testing.T) {
	require.True(t, strings.HasPrefix(healthpb.Health_Check_FullMethodName, server.HealthPrefix))
}

// Successes are recorded once per connection; failures on every call.
func TestAuthSuccessOncePerConnection(t *testing.T) {
	var mu sync.Mutex
	kinds := map[string]int{}
	e := startWith(t, func(_ context.Context, ev auth.Event) {
		mu.Lock()
		kinds[ev.Kind]++
		mu.Unlock()
	})
	gwTok := token(t, e.pki, auth.IDGateway)
	for range 2 { // two connections
		c := e.dialAs(t, auth.IDGateway, gwTok)
		for range 3 {
			_, err := c.Status(ctx(t), &secretsv1.StatusRequest{})
			require.NoError(t, err)
		}
	}
	bad := e.dialAs(t, auth.IDGateway, "not-the-token-but-long-enough-0123456789")
	for range 3 {
		_, err := bad.Status(ctx(t), &secretsv1.StatusRequest{})
		require.Equal(t, codes.Unauthenticated, status.Code(err))
	}
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, 2, kinds["auth.success"], "one success per connection, not per call")
	require.Equal(t, 3, kinds["auth.failure"], "every failure is recorded")
}

// Internal ports key the limiter on identity plus address: one identity's
// bad tokens lock out that identity only, not the others on the address.
func TestLockoutIsPerIdentity(t *testing.T) {
	e := start(t)
	bad := e.dialAs(t, auth.IDPairingd, "not-the-token-but-long-enough-0123456789")
	var last error
	for range 11 {
		_, last = bad.Status(ctx(t), &secretsv1.StatusRequest{})
	}
	require.Equal(t, codes.ResourceExhausted, status.Code(last), "err: %v", last)
	_, err := e.dialAs(t, auth.IDGateway, token(t, e.pki, auth.IDGateway)).Status(ctx(t), &secretsv1.StatusRequest{})
	require.NoError(t, err, "the gateway on the same address is not locked out")
}

// Each daemon tightens its state dir in Load, before anything else reads
// it (seed section 5), even when it then fails on missing certs.
func TestLoadTightensTheStateDir(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o755))
	cfg := filepath.Join(dir, "moltbot.json")
	require.NoError(t, os.WriteFile(cfg, []byte("{}"), 0o644))
	require.NoError(t, os.Chmod(cfg, 0o644))
	_, err := server.Base{Name: "gateway", StateDir: dir, PKIDir: t.TempDir(), LogLevel: "error"}.Load()
	require.Error(t, err, "no certs in the pki dir")
	for p, want := range map[string]os.FileMode{dir: 0o700, cfg: 0o600} {
		fi, err := os.Stat(p)
		require.NoError(t, err)
		require.Equal(t, want, fi.Mode().Perm(), p)
	}
}
