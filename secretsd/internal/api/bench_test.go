package api

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	secretsv1 "github.com/moltbot/moltbot-secure/proto/secrets/v1"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/client"
	"github.com/moltbot/moltbot-secure/services/migrate"
	"github.com/moltbot/moltbot-secure/services/server"
	"github.com/moltbot/moltbot-secure/services/tlsutil"
)

// The baseline is a bare grpc.Server with the same strict-mTLS config and no
// interceptors, answering grpc.health.v1 Check: one "echo" round trip. The
// name asked for is registered, so the reply carries a message as
// secretsd's do (an unknown name would answer with trailers only: one
// HTTP/2 frame instead of three, a cheaper call than any real one).
func startEcho(tb testing.TB, e env) healthpb.HealthClient {
	tb.Helper()
	b := server.Base{Name: auth.IDSecretsd, PKIDir: e.pki, StateDir: tb.TempDir(), LogLevel: "error"}
	ld, err := b.Load()
	require.NoError(tb, err)
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(ld.TLS.ServerConfig(tls.RequireAndVerifyClientCert))))
	hs := health.NewServer()
	hs.SetServingStatus(string(payload), healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(g, hs)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	go func() { _ = g.Serve(lis) }()
	tb.Cleanup(g.Stop)
	src, err := tlsutil.NewSource(tlsutil.FilesFor(e.pki, auth.IDGateway))
	require.NoError(tb, err)
	tok, err := client.ReadToken(server.TokenFile(e.pki, auth.IDGateway))
	require.NoError(tb, err)
	cc, err := client.Dial(lis.Addr().String(), src.ClientConfig(auth.IDSecretsd), tok)
	require.NoError(tb, err)
	tb.Cleanup(func() { cc.Close() })
	return healthpb.NewHealthClient(cc)
}

var payload = []byte("sk-0123456789abcdefghijklmnopqrstuvwxyz-0123456789abcdefghijklmn") // 64 B

func secretsPair(c secretsv1.SecretsClient) func(context.Context) error {
	return func(ctx context.Context) error {
		enc, err := c.Encrypt(ctx, &secretsv1.EncryptRequest{Plaintext: payload, Aad: "models.providers.openai.apiKey"})
		if err != nil {
			return err
		}
		_, err = c.Decrypt(ctx, &secretsv1.DecryptRequest{Envelope: enc.GetEnvelope(), Aad: "models.providers.openai.apiKey"})
		return err
	}
}

// echoPair makes two Check calls carrying the 64-byte payload as the service
// name, each answered with a message.
func echoPair(c healthpb.HealthClient) func(context.Context) error {
	return func(ctx context.Context) error {
		for range 2 {
			r, err := c.Check(ctx, &healthpb.HealthCheckRequest{Service: string(payload)})
			if err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				return fmt.Errorf("echo: %v %v", r.GetStatus(), err)
			}
		}
		return nil
	}
}

// runPairs runs op b.N times from `callers` goroutines sharing one connection.
func runPairs(b *testing.B, callers int, op func(context.Context) error) {
	ctx := context.Background()
	if err := op(ctx); err != nil { // warm the connection
		b.Fatal(err)
	}
	b.ResetTimer()
	if callers == 1 {
		for range b.N {
			if err := op(ctx); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		b.SetParallelism((callers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := op(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
}

// BenchmarkEncryptDecrypt: Encrypt+Decrypt pairs through the real secretsd
// (full chain, mTLS) vs two calls to a bare mTLS server, at 1 and 16
// callers (names as services/cmd/benchreport expects them).
func BenchmarkEncryptDecrypt(b *testing.B) {
	e := start(b)
	sec := secretsPair(e.as(b, auth.IDGateway))
	echo := echoPair(startEcho(b, e))
	for _, callers := range []int{1, 16} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			b.Run("secretsd", func(b *testing.B) { runPairs(b, callers, sec) })
			b.Run("echo", func(b *testing.B) { runPairs(b, callers, echo) })
		})
	}
}

// grpcEncrypter is migrate.Encrypter over secretsd's Encrypt RPC, as the
// gateway's configstore.SecretsClient is for `security migrate`.
type grpcEncrypter struct{ c secretsv1.SecretsClient }

func (g grpcEncrypter) Encrypt(ctx context.Context, pt []byte, aad string) (string, error) {
	r, err := g.c.Encrypt(ctx, &secretsv1.EncryptRequest{Plaintext: pt, Aad: aad})
	if err != nil {
		return "", err
	}
	return r.GetEnvelope(), nil
}

// manySecrets is an upstream-style config with n plain Telegram account
// bot tokens (secret fields migrate must encrypt) and a dm policy to rewrite.
func manySecrets(n int) []byte {
	var b strings.Builder
	b.WriteString("// generated\n{\n  channels: { telegram: { dm: { policy: \"open\", allowFrom: [\"*\"] }, accounts: {\n")
	for i := range n {
		fmt.Fprintf(&b, "    a%04d: { botToken: \"%d:plain-secret-%04d-%s\" },\n", i, 100000+i, i, strings.Repeat("x", 24))
	}
	b.WriteString("  } } },\n}\n")
	return []byte(b.String())
}

// BenchmarkMigrate1000Secrets times one `security migrate` of a config
// holding 1,000 plain secrets, each sealed by a real secretsd over mTLS
// gRPC (full interceptor chain) as the gateway does it, plus the sealed
// backup and the atomic write (target < 1 s).
func BenchmarkMigrate1000Secrets(b *testing.B) {
	e := start(b)
	enc := grpcEncrypter{e.as(b, auth.IDGateway)}
	dir := b.TempDir()
	cfg := filepath.Join(dir, "moltbot.json")
	src := manySecrets(1000)
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		require.NoError(b, os.WriteFile(cfg, src, 0o600))
		b.StartTimer()
		rep, err := migrate.Run(ctx, migrate.Options{StateDir: dir, Encrypter: enc, Now: func() time.Time { return time.Unix(int64(i), 0) }})
		if err != nil || !rep.Changed {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	out, err := os.ReadFile(cfg)
	require.NoError(b, err)
	if strings.Contains(string(out), "plain-secret-") {
		b.Fatal("a secret was left in plain text: the benchmark must measure encryption")
	}
	if n := strings.Count(string(out), "\"kid\""); n < 1000 {
		b.Fatalf("%d envelopes in the migrated file, want 1000", n)
	}
}
