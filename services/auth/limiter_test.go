package auth

import (
	"fmt"
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
	require.Equal(t, RoleClient, id)
	require.Equal(t, uint64(1), gen)

	require.True(t, g.Set("new-token-new-token-new-token-klmnopqrst"))
	require.Equal(t, uint64(2), seen)
	_, _, ok = g.Verify("", "old-token-old-token-old-token-abcdefghij")
	require.False(t, ok, "old token refused after the swap")
	id, _, ok = g.Verify(IDCLI, "new-token-new-token-new-token-klmnopqrst")
	require.True(t, ok)
	require.Equal(t, RoleClient, id, "the gateway token never makes the owner, cli cert or not")
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

func TestLimiterEvictionNeverFreesALockedEntry(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	l := &Limiter{Max: 2, Window: time.Minute, Lockout: time.Hour, MaxEntries: 3, Now: func() time.Time { return now }}
	locked := []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}
	for _, a := range locked {
		l.Fail(a)
		_, isLocked := l.Fail(a)
		require.True(t, isLocked, a)
	}
	// The table is full of locked entries; a spray of new addresses must
	// not push them out (that would lift the lockout).
	for i := range 50 {
		now = now.Add(time.Second)
		l.Fail(fmt.Sprintf("192.0.2.%d", i))
	}
	for _, a := range locked {
		_, blocked := l.Blocked(a)
		require.True(t, blocked, "%s still locked after eviction pressure", a)
	}
}

func TestLimitKey(t *testing.T) {
	tests := []struct {
		name, addr, cert, want string
	}{
		{"token-only client: the address", "172.18.0.1", "", "172.18.0.1"},
		{"owner cert: its own bucket", "172.18.0.1", IDCLI, "cli@172.18.0.1"},
		{"internal identity plus address", "10.0.0.5", IDGateway, "gateway@10.0.0.5"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { require.Equal(t, tc.want, LimitKey(tc.addr, tc.cert)) })
	}
	// Ten token-only failures from the proxy address lock that bucket, not the owner's.
	l := NewLimiter()
	for range 10 {
		l.Fail(LimitKey("172.18.0.1", ""))
	}
	_, blocked := l.Blocked(LimitKey("172.18.0.1", ""))
	require.True(t, blocked)
	_, blocked = l.Blocked(LimitKey("172.18.0.1", IDCLI))
	require.False(t, blocked, "the owner's bucket is separate")
}

func TestClientPortRoles(t *testing.T) {
	const gwTok, cliTok, svcTok = "gateway-token-gateway-token-abcdefghijk", "cli-token-cli-token-cli-token-lmnopqrst", "svc-token"
	all := NewServiceTokens(map[string]Digest{IDCLI: DigestOf(cliTok), IDGateway: DigestOf(svcTok)})
	v := ClientPort{Gateway: NewGatewayToken(gwTok), Owner: all.Only(IDCLI)}
	tests := []struct {
		name, cert, tok string
		wantID          string
		ok              bool
	}{
		{"no token", "", "", "", false},
		{"gateway token, no cert", "", gwTok, RoleClient, true},
		{"cli cert + gateway token is a client", IDCLI, gwTok, RoleClient, true},
		{"cli cert + cli.token is the owner", IDCLI, cliTok, RoleOwner, true},
		{"cli.token without the cli cert", "", cliTok, "", false},
		{"service cert + gateway token is a client", IDGateway, gwTok, RoleClient, true},
		{"service cert + its own token is nobody", IDGateway, svcTok, "", false},
		{"service cert + cli.token is nobody", IDGateway, cliTok, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, _, ok := v.Verify(tc.cert, tc.tok)
			require.Equal(t, tc.ok, ok)
			require.Equal(t, tc.wantID, id)
		})
	}
	// Rotating the gateway token leaves the owner working.
	v.Gateway.Set("rotated-token-rotated-token-uvwxyzABCDE")
	id, _, ok := v.Verify(IDCLI, cliTok)
	require.True(t, ok)
	require.Equal(t, RoleOwner, id)
}

// An attacker spraying thousands of source addresses must not clear its own
// lockout: eviction drops only unlocked entries, whatever the mix.
func TestLimiterSprayNeverFreesLockedAddresses(t *testing.T) {
	now := time.Unix(2_000_000, 0)
	l := &Limiter{Max: 3, Window: time.Minute, Lockout: time.Hour, MaxEntries: 64, Now: func() time.Time { return now }}
	var locked []string
	for i := range 40 {
		a := fmt.Sprintf("198.51.100.%d", i)
		for range 3 {
			l.Fail(a)
		}
		_, isLocked := l.Blocked(a)
		require.True(t, isLocked, a)
		locked = append(locked, a)
	}
	for i := range 10_000 {
		if i%100 == 0 {
			now = now.Add(time.Second)
		}
		l.Fail(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255))
		require.LessOrEqual(t, len(l.entries), l.MaxEntries, "memory stays bounded")
	}
	for _, a := range locked {
		_, blocked := l.Blocked(a)
		require.True(t, blocked, "%s freed by eviction under a spray of 10,000 addresses", a)
	}
	// The lockout still ends when its time is up.
	now = now.Add(time.Hour)
	_, blocked := l.Blocked(locked[0])
	require.False(t, blocked)
}

// Eviction drops entries whose failures are older than the window first, and
// keeps the recent ones with their counts: an attacker cannot reset its own
// failure count by pushing new addresses, and the table stays full, not
// emptied.
func TestLimiterEvictionKeepsRecentFailures(t *testing.T) {
	now := time.Unix(3_000_000, 0)
	l := &Limiter{Max: 3, Window: time.Minute, Lockout: time.Hour, MaxEntries: 10, Now: func() time.Time { return now }}
	for i := range 5 {
		l.Fail(fmt.Sprintf("old-%d", i))
	}
	now = now.Add(2 * time.Minute)
	for i := range 5 {
		a := fmt.Sprintf("recent-%d", i)
		l.Fail(a)
		l.Fail(a)
	}
	require.Len(t, l.entries, 10)
	_, locked := l.Fail("newcomer") // full: evicts the five old entries only
	require.False(t, locked)
	require.Len(t, l.entries, 6)
	for i := range 5 {
		_, locked := l.Fail(fmt.Sprintf("recent-%d", i))
		require.True(t, locked, "recent-%d lost its two failures to eviction", i)
	}
	// All recent and unlocked: the oldest go one at a time, the table stays full.
	l2 := &Limiter{Max: 3, Window: time.Minute, Lockout: time.Hour, MaxEntries: 10, Now: func() time.Time { return now }}
	for i := range 30 {
		l2.Fail(fmt.Sprintf("a-%d", i))
		require.Len(t, l2.entries, min(i+1, 10))
	}
}
