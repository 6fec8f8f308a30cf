package app

import (
	"context"
	"crypto/rand"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/server"
	"github.com/stretchr/testify/require"
)

// A weak $CLAWDBOT_GATEWAY_TOKEN is refused at once, naming the rule and
// the command that makes a good one, before the PKI is read or any
// dependency is dialled (issue 14: it used to wait 15 s for secretsd).
func TestRunRefusesWeakEnvTokenFirst(t *testing.T) {
	// A real listener in secretsd's place that counts who calls.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	var dialled atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			dialled.Add(1)
			c.Close()
		}
	}()
	for _, tc := range []struct{ name, token string }{
		{"short", "short-token-123"},
		{"few distinct", "abababababababababababababababababababab"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvToken, tc.token)
			o := Options{
				Base:        server.Base{Name: "gateway", PKIDir: t.TempDir() + "/no-pki", StateDir: t.TempDir()},
				SecretsAddr: ln.Addr().String(), PairingAddr: ln.Addr().String(), SandboxAddr: ln.Addr().String(),
			}
			start := time.Now()
			err := Run(context.Background(), o)
			require.Less(t, time.Since(start), time.Second)
			require.True(t, errors.Is(err, auth.ErrWeakToken), "%v", err)
			require.ErrorContains(t, err, "$"+EnvToken)
			require.ErrorContains(t, err, "moltbot token generate")
			require.ErrorContains(t, err, "the rule is at least")
			require.NotContains(t, err.Error(), tc.token, "never the token itself")
		})
	}
	time.Sleep(50 * time.Millisecond)
	require.Zero(t, dialled.Load(), "no dependency contacted")
}

func TestCheckEnvToken(t *testing.T) {
	t.Setenv(EnvToken, "")
	require.NoError(t, CheckEnvToken(), "unset: the other sources are checked after the load")
	good, err := auth.GenerateToken(rand.Reader)
	require.NoError(t, err)
	t.Setenv(EnvToken, "  "+good+"\n")
	require.NoError(t, CheckEnvToken())
}
