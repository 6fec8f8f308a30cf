//go:build integration

package integration

import (
	"context"
	"crypto/rand"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/client"
	"github.com/moltbot/moltbot-secure/services/testharness"
)

// TestLoadConcurrentStatus runs 16 authenticated clients (cli certificate
// and gateway token, one connection each) calling Gateway.Status against
// the shared stack's gateway container for 10 s (60 s with MOLTBOT_SOAK=1):
// no call may fail, and the gateway's open fds and RSS (read from the
// host's /proc at the container's pid) must come back to about where they
// started once the clients are gone. p50/p99 are logged.
func TestLoadConcurrentStatus(t *testing.T) {
	const clients = 16
	dur := 10 * time.Second
	if soak() {
		dur = 60 * time.Second
	}
	st := sharedStack(t)
	ctx := ctxFor(t, dur+time.Minute)
	pid, err := st.HostPid(ctx, testharness.Gateway)
	require.NoError(t, err)

	// Warm up one round of connections first, so the baseline includes
	// what the gateway keeps for good (pools, caches, its own conns).
	runStatusLoad(t, st, clients, time.Second)
	fds0, rss0 := settledStats(t, pid)
	// Peak fds and RSS while the clients run.
	var fdsLoad, rssLoad int
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for end := time.Now().Add(dur); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
			if f, r, err := testharness.ProcStats(pid); err == nil {
				fdsLoad, rssLoad = max(fdsLoad, f), max(rssLoad, r)
			}
		}
	}()
	lat, calls, errs := runStatusLoad(t, st, clients, dur)
	<-sampled
	fds1, rss1 := settledStats(t, pid)

	require.Zero(t, errs, "failed calls out of %d", calls)
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(float64(len(lat))*p))] }
	t.Logf("%d clients x %s: %d Status calls, %.0f calls/s, p50 %s, p99 %s, max %s",
		clients, dur, calls, float64(calls)/dur.Seconds(), pct(0.50), pct(0.99), lat[len(lat)-1])
	t.Logf("gateway pid %d: fds %d before, %d peak under load, %d after; RSS %d KiB before, %d peak, %d after",
		pid, fds0, fdsLoad, fds1, rss0, rssLoad, rss1)
	require.LessOrEqual(t, fds1, fds0+4, "fds leak: %d before, %d after the clients left", fds0, fds1)
	require.LessOrEqual(t, rss1, rss0+max(rss0/2, 16<<10), "RSS grew from %d to %d KiB", rss0, rss1)
}

// runStatusLoad runs n clients for d and returns every latency, the call
// count and the error count. Connections are closed on return.
func runStatusLoad(t *testing.T, st *testharness.Stack, n int, d time.Duration) ([]time.Duration, int, int) {
	t.Helper()
	cfg, err := st.ClientTLS(testharness.CLI, testharness.Gateway)
	require.NoError(t, err)
	tok, err := st.GatewayToken()
	require.NoError(t, err)
	addr, err := st.Addr(ctxFor(t, 10*time.Second), testharness.Gateway)
	require.NoError(t, err)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		all   []time.Duration
		calls int
		nerr  atomic.Int64
	)
	end := time.Now().Add(d)
	for range n {
		cc, err := client.Dial(addr, cfg, tok)
		require.NoError(t, err)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cc.Close()
			gw := gatewayv1.NewGatewayClient(cc)
			lat := make([]time.Duration, 0, 4096)
			for time.Now().Before(end) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				t0 := time.Now()
				_, err := gw.Status(ctx, &gatewayv1.StatusRequest{})
				lat = append(lat, time.Since(t0))
				cancel()
				if err != nil {
					if nerr.Add(1) <= 3 {
						t.Logf("status: %v", err)
					}
				}
			}
			mu.Lock()
			all = append(all, lat...)
			calls += len(lat)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return all, calls, int(nerr.Load())
}

// settledStats waits for the server side of closed connections to go away
// (up to 5 s) and returns fds and RSS.
func settledStats(t *testing.T, pid int) (int, int) {
	t.Helper()
	var fds, rss, prev int
	for i := 0; i < 50; i++ {
		var err error
		fds, rss, err = testharness.ProcStats(pid)
		require.NoError(t, err)
		if i > 0 && fds == prev {
			break
		}
		prev = fds
		time.Sleep(100 * time.Millisecond)
	}
	return fds, rss
}

// TestLoadTokenBruteForce makes 10,000 token guesses against a gateway
// run as a local process, from 127.0.0.2, while a legitimate client on
// 127.0.0.3 keeps calling Status: no guess succeeds, the lockout engages
// (ResourceExhausted) within the first 11 guesses, and the legitimate client
// never sees an error.
func TestLoadTokenBruteForce(t *testing.T) {
	const attempts = 10_000
	ls := testharness.StartLocal(t, testharness.LocalOptions{Services: []string{testharness.Secretsd, testharness.Gateway}})
	ctx := ctxFor(t, 3*time.Minute)
	caOnly, err := ls.CAOnlyTLS(testharness.Gateway)
	require.NoError(t, err)
	good, err := ls.GatewayToken()
	require.NoError(t, err)

	attacker, err := ls.Dial(testharness.Gateway, caOnly, "", testharness.DialFrom("127.0.0.2"))
	require.NoError(t, err)
	defer attacker.Close()
	legit, err := ls.Dial(testharness.Gateway, caOnly, good, testharness.DialFrom("127.0.0.3"))
	require.NoError(t, err)
	defer legit.Close()
	legitGW := gatewayv1.NewGatewayClient(legit)
	_, err = legitGW.Status(ctx, &gatewayv1.StatusRequest{})
	require.NoError(t, err, "legitimate client before the attack")

	stop := make(chan struct{})
	var legitCalls, legitErrs atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := legitGW.Status(cctx, &gatewayv1.StatusRequest{})
			cancel()
			legitCalls.Add(1)
			if err != nil && legitErrs.Add(1) <= 3 {
				t.Logf("legitimate client: %v", err)
			}
		}
	}()

	gw := gatewayv1.NewGatewayClient(attacker)
	byCode := map[codes.Code]int{}
	firstLock := 0
	start := time.Now()
	for i := 1; i <= attempts; i++ {
		guess, err := auth.GenerateToken(rand.Reader)
		require.NoError(t, err)
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = gw.Status(cctx, &gatewayv1.StatusRequest{}, grpc.PerRPCCredentials(client.Token(guess)))
		cancel()
		c := status.Code(err)
		byCode[c]++
		if c == codes.ResourceExhausted && firstLock == 0 {
			firstLock = i
		}
	}
	took := time.Since(start)
	// The right token from the attacker's address is refused while locked.
	_, err = gw.Status(ctx, &gatewayv1.StatusRequest{}, grpc.PerRPCCredentials(client.Token(good)))
	lockedGood := status.Code(err)
	close(stop)
	wg.Wait()

	t.Logf("%d guesses in %s (%.0f/s): %v; lockout from guess %d; legitimate client: %d calls, %d errors",
		attempts, took.Round(time.Millisecond), attempts/took.Seconds(), byCode, firstLock, legitCalls.Load(), legitErrs.Load())
	require.Zero(t, byCode[codes.OK], "successful guesses")
	require.Equal(t, attempts, byCode[codes.Unauthenticated]+byCode[codes.ResourceExhausted], "every guess refused as Unauthenticated or ResourceExhausted: %v", byCode)
	require.Positive(t, firstLock)
	require.LessOrEqual(t, firstLock, 11, "lockout engages after 10 failures")
	require.Equal(t, codes.ResourceExhausted, lockedGood, "the right token from a locked-out address is refused too")
	require.Positive(t, legitCalls.Load())
	require.Zero(t, legitErrs.Load(), "the legitimate client is unaffected")
}
