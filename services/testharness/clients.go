package testharness

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	"github.com/moltbot/moltbot-secure/services/client"
	"github.com/moltbot/moltbot-secure/services/pkiinit"
	"github.com/moltbot/moltbot-secure/services/tlsutil"
)

// ClientTLS presents identity id's certificate from this stack's PKI and
// verifies the server as serverName (a service name; every leaf also has
// localhost and 127.0.0.1).
func (s *Stack) ClientTLS(id, serverName string) (*tls.Config, error) {
	src, err := tlsutil.NewSource(tlsutil.FilesFor(s.pkiDir, id))
	if err != nil {
		return nil, err
	}
	return src.ClientConfig(serverName), nil
}

// CAOnlyTLS verifies the server against this stack's CA and presents no
// client certificate (an app on the gateway port; refused on internal ports).
func (s *Stack) CAOnlyTLS(serverName string) (*tls.Config, error) {
	return tlsutil.CAOnlyClientConfig(tlsutil.FilesFor(s.pkiDir, CLI).CA, serverName)
}

// ForeignTLS presents a certificate for identity id issued by another CA
// (made once per stack), while still verifying the server against this
// stack's CA, so any failure is the server refusing the client.
func (s *Stack) ForeignTLS(id, serverName string) (*tls.Config, error) {
	s.foreignOnce.Do(func() {
		s.foreignDir, s.foreignErr = os.MkdirTemp("", s.name+"-foreign-")
		if s.foreignErr == nil {
			_, s.foreignErr = pkiinit.Init(pkiinit.Options{PKIDir: s.foreignDir})
		}
	})
	if s.foreignErr != nil {
		return nil, fmt.Errorf("foreign CA: %w", s.foreignErr)
	}
	f := tlsutil.FilesFor(s.foreignDir, id)
	f.CA = tlsutil.FilesFor(s.pkiDir, id).CA
	src, err := tlsutil.NewSource(f)
	if err != nil {
		return nil, err
	}
	return src.ClientConfig(serverName), nil
}

// Token is the service token of identity id (what id presents on
// internal ports).
func (s *Stack) Token(id string) (string, error) {
	return client.ReadToken(filepath.Join(s.pkiDir, id+".token"))
}

// GatewayToken is the bootstrap gateway client token the gateway serves
// with (unless a test overrides CLAWDBOT_GATEWAY_TOKEN).
func (s *Stack) GatewayToken() (string, error) {
	return client.ReadToken(filepath.Join(s.pkiDir, pkiinit.GatewayTokenFile))
}

// Dial connects to svc's published port with cfg and token ("" for none).
// The connection is lazy: errors surface on the first call.
func (s *Stack) Dial(ctx context.Context, svc string, cfg *tls.Config, token string) (*grpc.ClientConn, error) {
	addr, err := s.Addr(ctx, svc)
	if err != nil {
		return nil, err
	}
	return client.Dial(addr, cfg, token)
}

// DialPlaintext connects to svc's port without TLS (must be refused).
func (s *Stack) DialPlaintext(ctx context.Context, svc string) (*grpc.ClientConn, error) {
	addr, err := s.Addr(ctx, svc)
	if err != nil {
		return nil, err
	}
	return grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// RawTLS does a bare TLS 1.3 handshake with svc's port and then waits for
// the server's first HTTP/2 frame. It returns nil only if the server
// accepted the client; with TLS 1.3 a refused client certificate shows up
// as an alert on that first read (e.g. "tls: certificate required").
func (s *Stack) RawTLS(ctx context.Context, svc string, cfg *tls.Config) error {
	addr, err := s.Addr(ctx, svc)
	if err != nil {
		return err
	}
	cfg = cfg.Clone()
	cfg.NextProtos = []string{"h2"}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	// Client preface and an empty SETTINGS frame, so a server that accepted
	// us has something to answer.
	preface := append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 0, 0, 0, 4, 0, 0, 0, 0, 0)
	if _, err := conn.Write(preface); err != nil {
		return err
	}
	buf := make([]byte, 1)
	if _, err := conn.Read(buf); err != nil {
		return err
	}
	return nil
}

// Conn is Dial for a test: fails t on error and closes at cleanup.
func (s *Stack) Conn(t testing.TB, svc string, cfg *tls.Config, token string) *grpc.ClientConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cc, err := s.Dial(ctx, svc, cfg, token)
	if err != nil {
		t.Fatalf("dial %s: %v", svc, err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// AdminConn is a gateway connection as the owner (auth.RoleOwner): the cli
// certificate with its own identity-bound cli.token, never the gateway
// token, exactly as the owner's CLI presents them.
func (s *Stack) AdminConn(t testing.TB) *grpc.ClientConn {
	t.Helper()
	cfg, err := s.ClientTLS(CLI, Gateway)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := s.Token(CLI)
	if err != nil {
		t.Fatal(err)
	}
	return s.Conn(t, Gateway, cfg, tok)
}

// TokenConn is a gateway connection with the token only (CA-verified
// server, no client certificate): the client role (auth.RoleClient).
func (s *Stack) TokenConn(t testing.TB) *grpc.ClientConn {
	t.Helper()
	cfg, err := s.CAOnlyTLS(Gateway)
	if err != nil {
		t.Fatal(err)
	}
	return s.Conn(t, Gateway, cfg, s.mustGatewayToken(t))
}

// AdminGateway is a Gateway client on AdminConn (the owner).
func (s *Stack) AdminGateway(t testing.TB) gatewayv1.GatewayClient {
	t.Helper()
	return gatewayv1.NewGatewayClient(s.AdminConn(t))
}

// ServiceConn connects to svc's internal port as identity `as`: its
// certificate and its service token (as the gateway or the CLI would).
func (s *Stack) ServiceConn(t testing.TB, svc, as string) *grpc.ClientConn {
	t.Helper()
	cfg, err := s.ClientTLS(as, svc)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := s.Token(as)
	if err != nil {
		t.Fatal(err)
	}
	return s.Conn(t, svc, cfg, tok)
}

func (s *Stack) mustGatewayToken(t testing.TB) string {
	t.Helper()
	tok, err := s.GatewayToken()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// ExportClientBundle writes the CLI's client bundle (CA, cli cert and key,
// tokens) to dir/pki, as `certs init --export` does, and returns dir: use
// it as MOLTBOT_STATE_DIR for a host CLI with MOLTBOT_GATEWAY set to
// Addr(Gateway).
func (s *Stack) ExportClientBundle(dir string) (string, error) {
	if err := pkiinit.Export(s.pkiDir, dir, nil); err != nil {
		return "", err
	}
	return dir, nil
}
