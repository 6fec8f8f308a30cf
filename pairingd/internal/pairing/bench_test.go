package pairing

import (
	"context"
	"crypto/rand"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/pairingd/internal/store"
)

func randomCode(tb testing.TB) string {
	buf := make([]byte, CodeLength)
	_, err := rand.Read(buf)
	require.NoError(tb, err)
	for i := range buf {
		buf[i] = Alphabet[buf[i]&31]
	}
	return string(buf)
}

// BenchmarkApprove measures Approve latency (a real bbolt commit with fsync)
// with 10,200 pending codes spread over 3,400 channels of 3. Each approved
// request is replaced, outside the timed section, to keep the load constant.
// Reports p50/p99 of Approve alone; the target is p99 < 5 ms.
func BenchmarkApprove(b *testing.B) {
	const channels, perChannel = 3400, 3
	st, err := store.Open(b.TempDir() + "/credentials/pairing.db")
	require.NoError(b, err)
	defer st.Close()
	now := time.Now()
	var seed []store.Pending
	codes := make([][]string, channels)
	for c := 0; c < channels; c++ {
		ch := fmt.Sprintf("ch%04d", c)
		for j := 0; j < perChannel; j++ {
			code := randomCode(b)
			codes[c] = append(codes[c], code)
			seed = append(seed, store.Pending{Channel: ch, SenderID: fmt.Sprintf("s%d", j), Code: code,
				CreatedAt: now, ExpiresAt: now.Add(time.Hour), LastReplyAt: now})
		}
	}
	require.NoError(b, st.Import(seed, nil))
	s, err := New(Config{Store: st})
	require.NoError(b, err)
	ctx := context.Background()

	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c := i % channels
		ch := fmt.Sprintf("ch%04d", c)
		code := codes[c][0]
		t0 := time.Now()
		if _, err := s.Approve(ctx, "cli", ch, code); err != nil {
			b.Fatalf("approve %s %s: %v", ch, code, err)
		}
		lat = append(lat, time.Since(t0))
		r, err := s.Request(ctx, ch, fmt.Sprintf("n%d", i), nil)
		if err != nil || r.Code == "" {
			b.Fatalf("refill %s: %v", ch, err)
		}
		codes[c] = append(codes[c][1:], r.Code)
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 {
		return float64(lat[int(float64(len(lat)-1)*p)].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

// BenchmarkApprovedSenders: how the inbound policy check (IsAllowed, what
// the gateway asks pairingd on every message) and Approve (a bbolt commit
// with fsync) grow with the number of approved senders on the channel.
// Each op is timed alone; p50/p99 are reported. Approve's sender is revoked
// again outside the timed section so the allowlist keeps its size.
func BenchmarkApprovedSenders(b *testing.B) {
	for _, op := range []string{"check", "approve"} {
		for _, n := range []int{1000, 10000, 100000} {
			b.Run(fmt.Sprintf("op=%s/approved=%d", op, n), func(b *testing.B) {
				st, err := store.Open(b.TempDir() + "/credentials/pairing.db")
				require.NoError(b, err)
				defer st.Close()
				now := time.Now()
				allowed := make([]store.Allowed, n)
				for i := range allowed {
					allowed[i] = store.Allowed{Channel: "telegram", SenderID: fmt.Sprintf("%d", 100000000+i), ApprovedAt: now}
				}
				require.NoError(b, st.Import(nil, allowed))
				s, err := New(Config{Store: st, ResendInterval: time.Nanosecond})
				require.NoError(b, err)
				ctx := context.Background()
				lat := make([]time.Duration, 0, b.N)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					switch op {
					case "check":
						id := allowed[(i*7919)%n].SenderID // spread over the keys
						t0 := time.Now()
						ok, err := s.IsAllowed(ctx, "telegram", id)
						lat = append(lat, time.Since(t0))
						if err != nil || !ok {
							b.Fatalf("IsAllowed %s: %v %v", id, ok, err)
						}
					case "approve":
						b.StopTimer()
						id := fmt.Sprintf("new%d", i)
						r, err := s.Request(ctx, "telegram", id, nil)
						if err != nil || r.Code == "" {
							b.Fatalf("request: %v", err)
						}
						b.StartTimer()
						t0 := time.Now()
						got, err := s.Approve(ctx, "cli", "telegram", r.Code)
						lat = append(lat, time.Since(t0))
						if err != nil || got.SenderID != id {
							b.Fatalf("approve: %v %+v", err, got)
						}
						b.StopTimer()
						require.NoError(b, s.Revoke(ctx, "telegram", id))
						b.StartTimer()
					}
				}
				b.StopTimer()
				sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
				pct := func(p float64) float64 { return float64(lat[int(float64(len(lat)-1)*p)].Nanoseconds()) / 1e6 }
				b.ReportMetric(pct(0.50), "p50-ms")
				b.ReportMetric(pct(0.99), "p99-ms")
			})
		}
	}
}
