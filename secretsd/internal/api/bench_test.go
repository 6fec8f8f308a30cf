package api

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	secretsv1 "github.com/moltbot/moltbot-secure/proto/secrets/v1"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/client"
	"github.com/moltbot/moltbot-secure/services/server"
	"github.com/moltbot/moltbot-secure/services/tlsutil"
)

// The baseline is a bare grpc.Server with the same strict-mTLS config and no
// interceptors, answering grpc.health.v1 Check: one "echo" round trip.
func startEcho(tb testing.TB, e env) healthpb.HealthClient {
	tb.Helper()
	b := server.Base{Name: auth.IDSecretsd, PKIDir: e.pki, StateDir: tb.TempDir(), LogLevel: "error"}
	ld, err := b.Load()
	require.NoError(tb, err)
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(ld.TLS.ServerConfig(tls.RequireAndVerifyClientCert))))
	healthpb.RegisterHealthServer(g, health.NewServer())
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
// name; an unknown name answers NotFound, still one full round trip.
func echoPair(c healthpb.HealthClient) func(context.Context) error {
	return func(ctx context.Context) error {
		for range 2 {
			if _, err := c.Check(ctx, &healthpb.HealthCheckRequest{Service: string(payload)}); status.Code(err) != codes.NotFound {
				return fmt.Errorf("echo: %v", err)
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

// TestBenchRatio prints secretsd pairs/s as a ratio of echo pairs/s, over
// interleaved passes in one run (make bench sets MOLTBOT_BENCH=1). The
// target is >= 0.8.
func TestBenchRatio(t *testing.T) {
	if os.Getenv("MOLTBOT_BENCH") == "" {
		t.Skip("set MOLTBOT_BENCH=1 (make bench)")
	}
	e := start(t)
	sec := secretsPair(e.as(t, auth.IDGateway))
	echo := echoPair(startEcho(t, e))
	for _, callers := range []int{1, 16} {
		var s, x float64
		const passes = 5
		for range passes {
			rs := testing.Benchmark(func(b *testing.B) { runPairs(b, callers, sec) })
			rx := testing.Benchmark(func(b *testing.B) { runPairs(b, callers, echo) })
			s += float64(rs.N) / rs.T.Seconds()
			x += float64(rx.N) / rx.T.Seconds()
		}
		s, x = s/passes, x/passes
		t.Logf("callers=%-2d secretsd %.0f pairs/s, bare mTLS echo %.0f pairs/s, ratio %.2fx (target >= 0.80)", callers, s, x, s/x)
	}
}
