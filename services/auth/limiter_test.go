package auth

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLimiter(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	l := NewLimiter()
	l.Now = func() time.Time { return now }

	for i := 0; i < 9; i++ {
		_, locked := l.Fail("10.0.0.1")
		require.False(t, locked, "failure %d", i+1)
	}
	wait, locked := l.Fail("10.0.0.1")
	require.True(t, locked)
	require.Equal(t, time.Minute, wait)

	_, blocked := l.Blocked("10.0.0.2")
	require.False(t, blocked, "another address is unaffected")

	now = now.Add(30 * time.Second)
	wait, blocked = l.Blocked("10.0.0.1")
	require.True(t, blocked)
	require.Equal(t, 30*time.Second, wait)

	now = now.Add(31 * time.Second)
	_, blocked = l.Blocked("10.0.0.1")
	require.False(t, blocked, "lockout expires")
}

func TestLimiterWindowForgetsOldFailures(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	l := NewLimiter()
	l.Now = func() time.Time { return now }
	for i := 0; i < 20; i++ {
		_, locked := l.Fail("10.0.0.1")
		require.False(t, locked, "9 failures per window never lock: failure %d", i+1)
		if i%9 == 8 {
			now = now.Add(61 * time.Second)
		}
	}
}

func TestLimiterBoundedMemory(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	l := NewLimiter()
	l.MaxEntries = 100
	l.Now = func() time.Time { return now }
	for i := 0; i < 1000; i++ {
		l.Fail(time.Duration(i).String())
	}
	require.LessOrEqual(t, len(l.entries), 100)
}

func TestGatewayTokenSwap(t *testing.T) {
	g := NewGatewayToken("old-token-old-token-old-token-abcdefghij")
	var seen uint64
	g.OnSwap(func(gen uint64) { seen = gen })
	id, gen, ok := g.Verify("", "old-token-old-token-old-token-abcdefghij")
	require.True(t, ok)
	require.Equal(t, IDClient, id)
	require.Equal(t, uint64(1), gen)

	require.True(t, g.Set("new-token-new-token-new-token-klmnopqrst"))
	require.Equal(t, uint64(2), seen)
	_, _, ok = g.Verify("", "old-token-old-token-old-token-abcdefghij")
	require.False(t, ok, "old token refused after the swap")
	id, _, ok = g.Verify(IDCLI, "new-token-new-token-new-token-klmnopqrst")
	require.True(t, ok)
	require.Equal(t, IDCLI, id, "a verified cli cert makes the caller admin")
	require.False(t, g.Set("new-token-new-token-new-token-klmnopqrst"), "same token: no change")
}

func TestServiceTokensBindIdentity(t *testing.T) {
	s := NewServiceTokens(map[string]Digest{IDGateway: DigestOf("gw-token"), IDCLI: DigestOf("cli-token")})
	tests := []struct {
		cert, tok string
		ok        bool
	}{
		{IDGateway, "gw-token", true},
		{IDGateway, "cli-token", false},
		{"", "gw-token", false},
		{"stranger", "gw-token", false},
	}
	for _, tc := range tests {
		_, _, ok := s.Verify(tc.cert, tc.tok)
		require.Equal(t, tc.ok, ok, "%s/%s", tc.cert, tc.tok)
	}
}
