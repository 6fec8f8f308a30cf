package api_test

import (
	"context"
	"crypto/tls"
	"flag"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/moltbot/moltbot-secure/gateway/internal/api"
	"github.com/moltbot/moltbot-secure/gateway/internal/api/sandboxproxy"
	"github.com/moltbot/moltbot-secure/gateway/internal/pairingproxy"
	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	pairingv1 "github.com/moltbot/moltbot-secure/proto/pairing/v1"
	sandboxv1 "github.com/moltbot/moltbot-secure/proto/sandbox/v1"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/client"
	"github.com/moltbot/moltbot-secure/services/pkiinit"
	"github.com/moltbot/moltbot-secure/services/server"
	"github.com/moltbot/moltbot-secure/services/tlsutil"
)

var update = flag.Bool("update", false, "rewrite the generated role table in docs/SECURITY.md")

func fullNames(d *grpc.ServiceDesc) []string {
	var out []string
	for _, m := range d.Methods {
		out = append(out, "/"+d.ServiceName+"/"+m.MethodName)
	}
	for _, s := range d.Streams {
		out = append(out, "/"+d.ServiceName+"/"+s.StreamName)
	}
	return out
}

func TestEveryMethodHasARow(t *testing.T) {
	tbl := api.Authz()
	require.Empty(t, auth.MissingRows(tbl, api.ClientPortServices()...), "every method served on the client port needs a row in api/authz.go")
	// And no stale rows: every row names a served method.
	served := map[string]bool{}
	for _, d := range api.ClientPortServices() {
		for _, m := range fullNames(d) {
			served[m] = true
		}
	}
	for m := range tbl {
		require.True(t, served[m], "row %s names no served method", m)
	}
}

// Every state change is owner only: a client row on one of these is a
// security bug, whatever its reason says.
func TestStateChangesAreOwnerOnly(t *testing.T) {
	tbl := api.Authz()
	for _, m := range []string{
		"/moltbot.gateway.v1.Gateway/SetConfig", "/moltbot.gateway.v1.Gateway/Reload", "/moltbot.gateway.v1.Gateway/Migrate",
		"/moltbot.gateway.v1.Gateway/Rollback", "/moltbot.gateway.v1.Gateway/RotateKey", "/moltbot.gateway.v1.Gateway/RotateCerts",
		"/moltbot.gateway.v1.Gateway/RevealConfig", "/moltbot.gateway.v1.Gateway/AuditFix", "/moltbot.gateway.v1.Gateway/SecurityLog",
		"/moltbot.gateway.v1.Gateway/MigrateFrom", "/moltbot.gateway.v1.Gateway/ListBackups",
		gatewayv1.Gateway_ListDevices_FullMethodName, gatewayv1.Gateway_ApproveDevice_FullMethodName, gatewayv1.Gateway_RejectDevice_FullMethodName, gatewayv1.Gateway_RevokeDevice_FullMethodName,
		pairingv1.Pairing_Approve_FullMethodName, pairingv1.Pairing_Reject_FullMethodName, pairingv1.Pairing_Revoke_FullMethodName,
		sandboxv1.Sandbox_Recreate_FullMethodName, sandboxv1.Sandbox_Prune_FullMethodName,
	} {
		require.Equal(t, []string{auth.RoleOwner}, tbl[m], m)
	}
	for _, m := range []string{sandboxv1.Sandbox_Ensure_FullMethodName, sandboxv1.Sandbox_Exec_FullMethodName,
		pairingv1.Pairing_Request_FullMethodName, pairingv1.Pairing_IsAllowed_FullMethodName, pairingv1.Pairing_Import_FullMethodName} {
		require.Contains(t, tbl, m)
		require.Empty(t, tbl[m], "%s is not exposed", m)
	}
}

// upstreams is a bufconn server standing in for pairingd and sandboxd:
// every call answers Unimplemented, so whatever the proxies forward comes
// back as "not denied".
func upstreams(t *testing.T) *grpc.ClientConn {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	s := grpc.NewServer()
	pairingv1.RegisterPairingServer(s, pairingv1.UnimplementedPairingServer{})
	sandboxv1.RegisterSandboxServer(s, sandboxv1.UnimplementedSandboxServer{})
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	cc, err := grpc.NewClient("passthrough:///up", grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { cc.Close() })
	return cc
}

type clientPort struct {
	pki  string
	addr string
}

// startClientPort serves the three client-port services exactly as the
// gateway does (services/server, the ClientPort verifier, api.Authz) over
// real mTLS with a PKI made by pkiinit.
func startClientPort(t *testing.T, limiter *auth.Limiter) clientPort {
	t.Helper()
	pki := filepath.Join(t.TempDir(), "pki")
	_, err := pkiinit.Init(pkiinit.Options{PKIDir: pki})
	require.NoError(t, err)
	ld, err := server.Base{Name: auth.IDGateway, PKIDir: pki, StateDir: t.TempDir(), LogLevel: "error"}.Load()
	require.NoError(t, err)
	gwTok, err := client.ReadToken(filepath.Join(pki, pkiinit.GatewayTokenFile))
	require.NoError(t, err)
	up := upstreams(t)
	pp, err := pairingproxy.New(pairingproxy.Config{Client: pairingv1.NewPairingClient(up), HasChannel: func(string) bool { return true }})
	require.NoError(t, err)
	sp := sandboxproxy.New(sandboxproxy.Config{Sandbox: sandboxv1.NewSandboxClient(up)})
	svc := api.New(api.Config{Token: func() string { return gwTok }})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv, err := server.New(server.Config{
		Name:     auth.IDGateway,
		TLS:      ld.TLS.ServerConfig(tls.VerifyClientCertIfGiven),
		Auth:     &auth.Authenticator{Verifier: auth.NewClientPort(auth.NewGatewayToken(gwTok), ld.Tokens), Limiter: limiter},
		Authz:    api.Authz(),
		Logger:   hclog.NewNullLogger(),
		Listener: lis,
		Register: func(r grpc.ServiceRegistrar) {
			api.RegisterService(r, svc)
			pairingproxy.RegisterService(r, pp)
			sandboxproxy.RegisterService(r, sp)
		},
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return clientPort{pki: pki, addr: lis.Addr().String()}
}

// dial connects as a caller kind: cert "" presents no client certificate.
func (c clientPort) dial(t *testing.T, cert, tokenFile string) *grpc.ClientConn {
	t.Helper()
	var cfg *tls.Config
	if cert == "" {
		var err error
		cfg, err = tlsutil.CAOnlyClientConfig(tlsutil.FilesFor(c.pki, auth.IDCLI).CA, auth.IDGateway)
		require.NoError(t, err)
	} else {
		src, err := tlsutil.NewSource(tlsutil.FilesFor(c.pki, cert))
		require.NoError(t, err)
		cfg = src.ClientConfig(auth.IDGateway)
	}
	tok := ""
	if tokenFile != "" {
		var err error
		tok, err = client.ReadToken(filepath.Join(c.pki, tokenFile))
		require.NoError(t, err)
	}
	cc, err := client.Dial(c.addr, cfg, tok)
	require.NoError(t, err)
	t.Cleanup(func() { cc.Close() })
	return cc
}

// call invokes any method with an empty request (unary or server stream)
// and returns the first error.
func call(cc *grpc.ClientConn, method string, stream bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if !stream {
		return cc.Invoke(ctx, method, &emptypb.Empty{}, &emptypb.Empty{})
	}
	s, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, method)
	if err != nil {
		return err
	}
	if err := s.SendMsg(&emptypb.Empty{}); err != nil {
		return err
	}
	if err := s.CloseSend(); err != nil {
		return err
	}
	for {
		if err := s.RecvMsg(&emptypb.Empty{}); err != nil {
			if err.Error() == "EOF" {
				return nil
			}
			return err
		}
	}
}

// TestClientPortMatrix calls every method served on the client port as
// every kind of caller, over real mTLS, and checks the code the table
// implies: no token or a service's own token is Unauthenticated; the
// gateway token (with or without a certificate) is a client; only the cli
// certificate with cli.token is the owner.
func TestClientPortMatrix(t *testing.T) {
	cp := startClientPort(t, &auth.Limiter{Max: 1 << 20, Window: time.Minute, Lockout: time.Minute, MaxEntries: 1024, Now: time.Now})
	tbl := api.Authz()
	callers := []struct {
		name string
		cc   *grpc.ClientConn
		role string // "" = not authenticated
	}{
		{"no token", cp.dial(t, "", ""), ""},
		{"client (gateway token, no cert)", cp.dial(t, "", pkiinit.GatewayTokenFile), auth.RoleClient},
		{"service cert + gateway token", cp.dial(t, auth.IDSecretsd, pkiinit.GatewayTokenFile), auth.RoleClient},
		{"service cert + own service token", cp.dial(t, auth.IDSecretsd, auth.IDSecretsd+".token"), ""},
		{"gateway cert + own service token", cp.dial(t, auth.IDGateway, auth.IDGateway+".token"), ""},
		{"cli cert + gateway token", cp.dial(t, auth.IDCLI, pkiinit.GatewayTokenFile), auth.RoleClient},
		{"owner (cli cert + cli.token)", cp.dial(t, auth.IDCLI, auth.IDCLI+".token"), auth.RoleOwner},
	}
	for _, d := range api.ClientPortServices() {
		streams := map[string]bool{}
		for _, s := range d.Streams {
			streams["/"+d.ServiceName+"/"+s.StreamName] = true
		}
		for _, m := range fullNames(d) {
			for _, c := range callers {
				t.Run(strings.TrimPrefix(m, "/")+"/"+c.name, func(t *testing.T) {
					err := call(c.cc, m, streams[m])
					code := status.Code(err)
					switch {
					case c.role == "":
						require.Equal(t, codes.Unauthenticated, code, "err: %v", err)
					case tbl.Allowed(m, c.role):
						require.NotContains(t, []codes.Code{codes.Unauthenticated, codes.PermissionDenied}, code, "err: %v", err)
					default:
						require.Equal(t, codes.PermissionDenied, code, "err: %v", err)
						if c.role == auth.RoleClient && tbl.Allowed(m, auth.RoleOwner) {
							require.Contains(t, status.Convert(err).Message(), "owner only:")
							require.Contains(t, status.Convert(err).Message(), "cli.token")
						}
					}
				})
			}
		}
	}
}

// The old flags are no way around the table: a client setting reveal or
// fix is refused, naming the new method.
func TestRevealAndFixFlagsRefused(t *testing.T) {
	cp := startClientPort(t, auth.NewLimiter())
	for _, cc := range []*grpc.ClientConn{cp.dial(t, "", pkiinit.GatewayTokenFile), cp.dial(t, auth.IDCLI, auth.IDCLI+".token")} {
		g := gatewayClient(cc)
		_, err := g.GetConfig(context.Background(), getConfigReveal())
		require.Equal(t, codes.InvalidArgument, status.Code(err), "err: %v", err)
		require.Contains(t, status.Convert(err).Message(), "RevealConfig")
		_, err = g.Audit(context.Background(), auditFix())
		require.Equal(t, codes.InvalidArgument, status.Code(err), "err: %v", err)
		require.Contains(t, status.Convert(err).Message(), "AuditFix")
	}
}

// Token-only failures (everyone behind docker-proxy shares an address)
// lock out that address, not the owner's certificate bucket.
func TestOwnerHasOwnLockoutBucket(t *testing.T) {
	cp := startClientPort(t, auth.NewLimiter())
	bad := cp.dial(t, "", "")
	var err error
	for range 11 {
		err = call(bad, "/moltbot.gateway.v1.Gateway/Status", false)
	}
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "err: %v", err)
	require.Equal(t, codes.ResourceExhausted, status.Code(call(cp.dial(t, "", pkiinit.GatewayTokenFile), "/moltbot.gateway.v1.Gateway/Status", false)),
		"the shared address is locked for token-only callers")
	require.NoError(t, call(cp.dial(t, auth.IDCLI, auth.IDCLI+".token"), "/moltbot.gateway.v1.Gateway/Status", false), "the owner is not locked out")
}

const (
	docBegin = "<!-- BEGIN GENERATED ROLE TABLE (gateway/internal/api/authz.go; go test ./internal/api -run TestSecurityDocRoleTable -update) -->"
	docEnd   = "<!-- END GENERATED ROLE TABLE -->"
)

// TestSecurityDocRoleTable fails when docs/SECURITY.md's role table differs
// from the table the gateway enforces; -update rewrites that section.
func TestSecurityDocRoleTable(t *testing.T) {
	path := filepath.Join("..", "..", "..", "docs", "SECURITY.md")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	doc := string(b)
	i, j := strings.Index(doc, docBegin), strings.Index(doc, docEnd)
	require.True(t, i >= 0 && j > i, "%s: markers %q ... %q missing", path, docBegin, docEnd)
	want := docBegin + "\n" + api.RoleTableMarkdown() + docEnd
	got := doc[i : j+len(docEnd)]
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(doc[:i]+want+doc[j+len(docEnd):]), 0o644))
		return
	}
	require.Equal(t, want, got, "docs/SECURITY.md role table is stale: run go test ./internal/api -run TestSecurityDocRoleTable -update (in gateway/)")
}

func gatewayClient(cc *grpc.ClientConn) gatewayv1.GatewayClient {
	return gatewayv1.NewGatewayClient(cc)
}

func getConfigReveal() *gatewayv1.GetConfigRequest { return &gatewayv1.GetConfigRequest{Reveal: true} }

func auditFix() *gatewayv1.AuditRequest { return &gatewayv1.AuditRequest{Fix: true} }
