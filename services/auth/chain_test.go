package auth_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pairingv1 "github.com/moltbot/moltbot-secure/proto/pairing/v1"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/client"
	"github.com/moltbot/moltbot-secure/services/pkiinit"
	"github.com/moltbot/moltbot-secure/services/server"
	"github.com/moltbot/moltbot-secure/services/tlsutil"
)

// watchServer answers unary calls Unimplemented (reached = authorized) and
// holds Watch open until the stream's context ends.
type watchServer struct {
	pairingv1.UnimplementedPairingServer
}

func (watchServer) Watch(_ *pairingv1.WatchRequest, s grpc.ServerStreamingServer[pairingv1.WatchResponse]) error {
	<-s.Context().Done()
	return s.Context().Err()
}

type events struct {
	mu  sync.Mutex
	got []auth.Event
}

func (e *events) add(_ context.Context, ev auth.Event) {
	e.mu.Lock()
	e.got = append(e.got, ev)
	e.mu.Unlock()
}

func (e *events) kinds() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.got {
		out = append(out, ev.Kind+":"+ev.CertID+":"+ev.ID)
	}
	return out
}

type chain struct {
	pki, addr string
	ev        *events
	gw        *auth.GatewayToken
}

// startChain serves the pairing service behind the real interceptor chain
// (services/server) over real mTLS, with the given verifier and table.
func startChain(t *testing.T, verifier func(pki string, tokens *auth.ServiceTokens, gw *auth.GatewayToken) auth.Verifier, tbl auth.Table, lim *auth.Limiter) chain {
	t.Helper()
	pki := filepath.Join(t.TempDir(), "pki")
	_, err := pkiinit.Init(pkiinit.Options{PKIDir: pki})
	require.NoError(t, err)
	ld, err := server.Base{Name: auth.IDPairingd, PKIDir: pki, StateDir: t.TempDir(), LogLevel: "error"}.Load()
	require.NoError(t, err)
	gwTok, err := client.ReadToken(filepath.Join(pki, pkiinit.GatewayTokenFile))
	require.NoError(t, err)
	gw := auth.NewGatewayToken(gwTok)
	ev := &events{}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv, err := server.New(server.Config{
		Name:         auth.IDPairingd,
		TLS:          ld.TLS.ServerConfig(tls.VerifyClientCertIfGiven),
		Auth:         &auth.Authenticator{Verifier: verifier(pki, ld.Tokens, gw), Limiter: lim, OnEvent: ev.add},
		Authz:        tbl,
		Logger:       hclog.NewNullLogger(),
		Listener:     lis,
		StreamGuards: []grpc.StreamServerInterceptor{gw.StreamGuard()},
		Register:     func(r grpc.ServiceRegistrar) { pairingv1.RegisterPairingServer(r, watchServer{}) },
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return chain{pki: pki, addr: lis.Addr().String(), ev: ev, gw: gw}
}

// dial connects with cert ("" = none) and the token in tokenFile ("" = none,
// or a literal token after "=").
func (c chain) dial(t *testing.T, cert, tokenFile string) pairingv1.PairingClient {
	t.Helper()
	var cfg *tls.Config
	var err error
	if cert == "" {
		cfg, err = tlsutil.CAOnlyClientConfig(tlsutil.FilesFor(c.pki, auth.IDCLI).CA, auth.IDPairingd)
		require.NoError(t, err)
	} else {
		src, err := tlsutil.NewSource(tlsutil.FilesFor(c.pki, cert))
		require.NoError(t, err)
		cfg = src.ClientConfig(auth.IDPairingd)
	}
	tok := ""
	switch {
	case strings.HasPrefix(tokenFile, "="):
		tok = tokenFile[1:]
	case tokenFile != "":
		tok, err = client.ReadToken(filepath.Join(c.pki, tokenFile))
		require.NoError(t, err)
	}
	cc, err := client.Dial(c.addr, cfg, tok)
	require.NoError(t, err)
	t.Cleanup(func() { cc.Close() })
	return pairingv1.NewPairingClient(cc)
}

func approve(c pairingv1.PairingClient) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.Approve(ctx, &pairingv1.ApproveRequest{})
	return err
}

func internalVerifier(_ string, tokens *auth.ServiceTokens, _ *auth.GatewayToken) auth.Verifier {
	return tokens
}

func roomyLimiter() *auth.Limiter {
	return &auth.Limiter{Max: 1000, Window: time.Minute, Lockout: time.Minute, MaxEntries: 100, Now: time.Now}
}

// On an internal port the token must be the certificate identity's own,
// the table decides per identity, and the outcome is recorded without the
// token: a success once per connection, every failure.
func TestChainInternalPort(t *testing.T) {
	tbl := auth.Table{pairingv1.Pairing_Approve_FullMethodName: {auth.IDGateway}}
	c := startChain(t, internalVerifier, tbl, roomyLimiter())

	gw := c.dial(t, auth.IDGateway, auth.IDGateway+".token")
	require.Equal(t, codes.Unimplemented, status.Code(approve(gw)), "the gateway with its own token passes auth and authz")
	require.Equal(t, codes.Unimplemented, status.Code(approve(gw)))

	err := approve(c.dial(t, auth.IDSandboxd, auth.IDSandboxd+".token"))
	require.Equal(t, codes.PermissionDenied, status.Code(err))
	require.Contains(t, status.Convert(err).Message(), "sandboxd may not call /moltbot.pairing.v1.Pairing/Approve")

	err = approve(c.dial(t, auth.IDGateway, auth.IDSandboxd+".token"))
	require.Equal(t, codes.Unauthenticated, status.Code(err), "another identity's token")
	require.Equal(t, "invalid token", status.Convert(err).Message())

	err = approve(c.dial(t, auth.IDGateway, ""))
	require.Equal(t, codes.Unauthenticated, status.Code(err))
	require.Contains(t, status.Convert(err).Message(), "missing bearer token")

	// An unlisted method is denied to everyone (default deny).
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = gw.IsAllowed(ctx, &pairingv1.IsAllowedRequest{})
	require.Equal(t, codes.PermissionDenied, status.Code(err))

	require.Equal(t, []string{
		"auth.success:gateway:gateway", // once for the connection's three calls
		"auth.success:sandboxd:sandboxd",
		"auth.failure:gateway:",
		"auth.failure:gateway:",
	}, c.ev.kinds())
	for _, e := range c.ev.got {
		require.Equal(t, "127.0.0.1", e.Addr)
		require.Equal(t, pairingv1.Pairing_Approve_FullMethodName, e.Method)
	}
}

// After Max failures the address (and identity) is locked out: every call is
// refused, the right token too, with a retry-after trailer; other
// identities behind the same address are not.
func TestChainLockout(t *testing.T) {
	tbl := auth.Table{pairingv1.Pairing_Approve_FullMethodName: {auth.IDGateway, auth.IDSandboxd}}
	c := startChain(t, internalVerifier, tbl, &auth.Limiter{Max: 3, Window: time.Minute, Lockout: time.Minute, MaxEntries: 100, Now: time.Now})
	bad := c.dial(t, auth.IDGateway, "=wrong-token")
	for i := range 2 {
		require.Equal(t, codes.Unauthenticated, status.Code(approve(bad)), "failure %d", i+1)
	}
	var trailer metadata.MD
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := bad.Approve(ctx, &pairingv1.ApproveRequest{}, grpc.Trailer(&trailer))
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "the third failure locks")
	require.Contains(t, status.Convert(err).Message(), "retry after 60 s")
	require.Equal(t, []string{"60"}, trailer.Get("retry-after"))

	err = approve(c.dial(t, auth.IDGateway, auth.IDGateway+".token"))
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "locked out even with the right token")
	require.Equal(t, codes.Unimplemented, status.Code(approve(c.dial(t, auth.IDSandboxd, auth.IDSandboxd+".token"))),
		"another identity's bucket is not locked")
	kinds := strings.Join(c.ev.kinds(), ",")
	require.Equal(t, 2, strings.Count(kinds, "auth.lockout:gateway:"), kinds)
}

func clientPortVerifier(_ string, tokens *auth.ServiceTokens, gw *auth.GatewayToken) auth.Verifier {
	return auth.NewClientPort(gw, tokens)
}

// At the client port a client asking for an owner-only method is told what
// makes the owner; a stream opened with the gateway token ends when the
// token is rotated, while the owner's stream stays open.
func TestChainClientPortAndRotation(t *testing.T) {
	tbl := auth.Table{
		pairingv1.Pairing_Approve_FullMethodName: {auth.RoleOwner},
		pairingv1.Pairing_Watch_FullMethodName:   {auth.RoleOwner, auth.RoleClient},
	}
	c := startChain(t, clientPortVerifier, tbl, roomyLimiter())
	cl := c.dial(t, "", pkiinit.GatewayTokenFile)
	err := approve(cl)
	require.Equal(t, codes.PermissionDenied, status.Code(err))
	require.Equal(t, auth.OwnerOnly(pairingv1.Pairing_Approve_FullMethodName), status.Convert(err).Message())
	require.Contains(t, status.Convert(err).Message(), "owner only: Approve needs the owner's certificate and cli.token")
	owner := c.dial(t, auth.IDCLI, auth.IDCLI+".token")
	require.Equal(t, codes.Unimplemented, status.Code(approve(owner)))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clientStream, err := cl.Watch(ctx, &pairingv1.WatchRequest{})
	require.NoError(t, err)
	ownerStream, err := owner.Watch(ctx, &pairingv1.WatchRequest{})
	require.NoError(t, err)
	time.Sleep(200 * time.Millisecond) // both streams reach the handler
	require.True(t, c.gw.Set("a-rotated-token-a-rotated-token-0123456789"))
	_, err = clientStream.Recv()
	require.Equal(t, codes.Unauthenticated, status.Code(err))
	require.Contains(t, status.Convert(err).Message(), "gateway token rotated")

	ownerDone := make(chan error, 1)
	go func() { _, err := ownerStream.Recv(); ownerDone <- err }()
	select {
	case err := <-ownerDone:
		t.Fatalf("the owner's stream ended on a gateway token rotation: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	// The old token no longer authenticates a new stream; the new one does.
	old, err := cl.Watch(ctx, &pairingv1.WatchRequest{})
	require.NoError(t, err)
	_, err = old.Recv()
	require.Equal(t, codes.Unauthenticated, status.Code(err))
	fresh := c.dial(t, "", "=a-rotated-token-a-rotated-token-0123456789")
	s, err := fresh.Watch(ctx, &pairingv1.WatchRequest{})
	require.NoError(t, err)
	freshDone := make(chan error, 1)
	go func() { _, err := s.Recv(); freshDone <- err }()
	select {
	case err := <-freshDone:
		t.Fatalf("a stream with the new token ended: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
}

func TestMissingRowsAndDescribe(t *testing.T) {
	tbl := auth.Table{pairingv1.Pairing_Approve_FullMethodName: {auth.RoleOwner}}
	missing := auth.MissingRows(tbl, &pairingv1.Pairing_ServiceDesc)
	require.NotContains(t, missing, pairingv1.Pairing_Approve_FullMethodName)
	require.Contains(t, missing, pairingv1.Pairing_Watch_FullMethodName, "streams are checked too")
	require.Contains(t, missing, pairingv1.Pairing_Reject_FullMethodName)
	require.Len(t, missing, len(pairingv1.Pairing_ServiceDesc.Methods)+len(pairingv1.Pairing_ServiceDesc.Streams)-1)

	require.Equal(t, "missing", auth.DescribeToken(""))
	require.Equal(t, fmt.Sprintf("weak: 5 characters, 3 distinct (rule: >= %d and >= %d)", auth.MinTokenLength, auth.MinTokenDistinct), auth.DescribeToken("aabbc"))
	strong := "Q2x9bT7mLkP4vW1zRs8NdYcH3fJg6aEuKoXi5qBpVnM"
	require.True(t, strings.HasPrefix(auth.DescribeToken(strong), "ok: 43 characters"))
	require.NotContains(t, auth.DescribeToken(strong), strong)

	addr, cert := auth.PeerInfo(context.Background())
	require.Empty(t, addr+cert, "no peer: no address, no identity")
	_, ok := auth.CallerFrom(context.Background())
	require.False(t, ok)
	require.Equal(t, codes.Unauthenticated, status.Code(tbl.Check(context.Background(), pairingv1.Pairing_Approve_FullMethodName)))
}
