// Package cmdutil holds what every CLI command shares: the lazily built
// gateway client, output helpers and typed errors mapped to exit codes.
package cmdutil

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/client"
	"github.com/moltbot/moltbot-secure/services/errs"
	"github.com/moltbot/moltbot-secure/services/tlsutil"
)

// Env names the CLI reads.
const (
	EnvGatewayToken = "CLAWDBOT_GATEWAY_TOKEN"
	EnvGatewayAddr  = "MOLTBOT_GATEWAY"
	// GatewayTokenFile is the bootstrap client token `certs init` writes in the pki dir.
	GatewayTokenFile = "gateway-auth.token"
)

// ErrNoGatewayToken: the CLI has no bundle or token to call the gateway
// with; the commands that can work offline (audit, migrate, rollback,
// validate) do.
var ErrNoGatewayToken = errors.New("cannot call the gateway")

// Factory builds dependencies lazily so --help and flag errors never dial.
type Factory struct {
	StateDirFlag string
	GatewayAddr  string
	JSON         bool
	Out          io.Writer
	Err          io.Writer

	mu          sync.Mutex
	conn        *grpc.ClientConn
	tokenSource string
}

// DefaultGatewayAddr is where `make up` publishes the gateway.
const DefaultGatewayAddr = "127.0.0.1:18789"

// New returns a factory writing to stdout/stderr. The gateway address is
// $MOLTBOT_GATEWAY here; when unset, Addr takes it from the stack pointer.
func New() *Factory {
	return &Factory{GatewayAddr: os.Getenv(EnvGatewayAddr), Out: os.Stdout, Err: os.Stderr}
}

// Location finds the state dir (see Locate for the order).
func (f *Factory) Location() (Location, error) {
	cwd, _ := os.Getwd()
	home, _ := os.UserHomeDir()
	return Locate(f.StateDirFlag, cwd, home)
}

// StateDir resolves the state dir.
func (f *Factory) StateDir() (string, error) {
	l, err := f.Location()
	return l.Dir, err
}

// Addr is the gateway address: --gateway, $MOLTBOT_GATEWAY, the address
// the pointer gives for the state dir in use, else DefaultGatewayAddr.
func (f *Factory) Addr() string {
	if f.GatewayAddr != "" {
		return f.GatewayAddr
	}
	if l, err := f.Location(); err == nil && l.Gateway != "" {
		return l.Gateway
	}
	return DefaultGatewayAddr
}

// RunningStack is the bundle and gateway address of the stack `make up`
// started, found without --state-dir or $MOLTBOT_STATE_DIR (./.moltbot in
// the checkout, else the pointer); empty when there is none.
func (f *Factory) RunningStack() (bundle, addr string) {
	cwd, _ := os.Getwd()
	home, _ := os.UserHomeDir()
	p, _ := ReadPointer(home)
	bundle = findBundleUp(cwd, home)
	if bundle == "" && isBundle(p.BundleDir) {
		bundle = p.BundleDir
	}
	if bundle != "" && filepath.Clean(p.BundleDir) == bundle {
		addr = p.Gateway
	}
	if f.GatewayAddr != "" {
		addr = f.GatewayAddr
	}
	if addr == "" {
		addr = DefaultGatewayAddr
	}
	return bundle, addr
}

// Explain is cmdutil.Explain with what this factory talked to.
func (f *Factory) Explain(err error) *Error {
	f.mu.Lock()
	w := Where{Addr: f.Addr(), TokenSource: f.tokenSource}
	f.mu.Unlock()
	// Name the running stack's bundle when it is not the one in use.
	if l, lerr := f.Location(); lerr == nil {
		if b, _ := f.RunningStack(); b != "" && b != l.Dir {
			w.Bundle = b
		}
	}
	return Explain(err, w)
}

// PKIDir is <state>/pki.
func (f *Factory) PKIDir() (string, error) {
	d, err := f.StateDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "pki"), nil
}

// GatewayToken returns $CLAWDBOT_GATEWAY_TOKEN or the bootstrap token file.
func (f *Factory) GatewayToken() (string, error) {
	t, _, err := f.gatewayToken()
	return t, err
}

// gatewayToken also says where the token came from (never the token).
func (f *Factory) gatewayToken() (token, source string, err error) {
	if t := strings.TrimSpace(os.Getenv(EnvGatewayToken)); t != "" {
		return t, "$" + EnvGatewayToken, nil
	}
	l, err := f.Location()
	if err != nil {
		return "", "", err
	}
	p := filepath.Join(l.Dir, "pki", GatewayTokenFile)
	t, err := client.ReadToken(p)
	if err != nil {
		return "", "", fmt.Errorf("%w: no client bundle at %s (from %s): set %s or --state-dir to the stack's bundle: %w",
			ErrNoGatewayToken, l.Dir, l.Source, EnvGatewayToken, err)
	}
	return t, p, nil
}

// Role says which principal the CLI is at the gateway: auth.RoleOwner when
// pki/cli.pem, cli-key.pem and cli.token are all present (the owner's
// bundle), else auth.RoleClient (the gateway token).
func (f *Factory) Role() (string, error) {
	pki, err := f.PKIDir()
	if err != nil {
		return "", err
	}
	if ownerBundle(pki) {
		return auth.RoleOwner, nil
	}
	return auth.RoleClient, nil
}

func ownerBundle(pki string) bool {
	files := tlsutil.FilesFor(pki, auth.IDCLI)
	return fileExists(files.Cert) && fileExists(files.Key) && fileExists(filepath.Join(pki, auth.IDCLI+".token"))
}

// Gateway returns the shared connection to the gateway. With the owner's
// bundle the CLI presents the cli certificate and its own cli.token (never
// the gateway token, so rotating that cannot lock the owner out); without
// it, it verifies the server against the CA and presents the gateway token
// ($CLAWDBOT_GATEWAY_TOKEN or pki/gateway-auth.token) as a client.
func (f *Factory) Gateway() (*grpc.ClientConn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conn != nil {
		return f.conn, nil
	}
	addr := f.Addr()
	if err := client.CheckAddr(addr); err != nil {
		return nil, &UsageError{Err: fmt.Errorf("--gateway: %w", err)}
	}
	l, err := f.Location()
	if err != nil {
		return nil, err
	}
	if !isBundle(l.Dir) {
		// Not "run certs init": that would make a second CA next to the
		// running stack's.
		return nil, fmt.Errorf("%w: no client bundle at %s (chosen by %s: it has no pki/ca.pem)", ErrNoGatewayToken, l.Dir, l.Source)
	}
	pki := filepath.Join(l.Dir, "pki")
	host, _, _ := net.SplitHostPort(addr)
	files := tlsutil.FilesFor(pki, auth.IDCLI)
	var (
		tlsCfg *tls.Config
		token  string
	)
	if ownerBundle(pki) {
		src, err := tlsutil.NewSource(files)
		if err != nil {
			return nil, err
		}
		f.tokenSource = filepath.Join(pki, auth.IDCLI+".token") + " (the owner's bundle)"
		if token, err = client.ReadToken(filepath.Join(pki, auth.IDCLI+".token")); err != nil {
			return nil, err
		}
		tlsCfg = src.ClientConfig(host)
	} else {
		if token, f.tokenSource, err = f.gatewayToken(); err != nil {
			return nil, err
		}
		if tlsCfg, err = tlsutil.CAOnlyClientConfig(files.CA, host); err != nil {
			return nil, err
		}
	}
	cc, err := client.Dial(addr, tlsCfg, token,
		grpc.WithChainUnaryInterceptor(plainErrorsUnary), grpc.WithChainStreamInterceptor(plainErrorsStream))
	if err != nil {
		return nil, err
	}
	f.conn = cc
	return cc, nil
}

// plainErrorsUnary turns status errors into errors whose text is the
// server's sentence alone (no "rpc error: code = ... desc =" form); the
// code stays reachable through status.Code and errors.Is (errs classes).
func plainErrorsUnary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return errs.FromStatus(invoker(ctx, method, req, reply, cc, opts...))
}

func plainErrorsStream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, errs.FromStatus(err)
	}
	return plainStream{s}, nil
}

type plainStream struct{ grpc.ClientStream }

func (s plainStream) RecvMsg(m any) error { return errs.FromStatus(s.ClientStream.RecvMsg(m)) }
func (s plainStream) SendMsg(m any) error { return errs.FromStatus(s.ClientStream.SendMsg(m)) }

// Close closes the connection if one was made.
func (f *Factory) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conn != nil {
		_ = f.conn.Close()
		f.conn = nil
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// PrintJSON writes v as indented JSON: protojson for messages, encoding/json otherwise.
func (f *Factory) PrintJSON(v any) error {
	if m, ok := v.(proto.Message); ok {
		b, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(m)
		if err != nil {
			return err
		}
		// protojson varies its whitespace on purpose; re-indent so the
		// output is stable across runs (scripts diff it).
		var out bytes.Buffer
		if err := json.Indent(&out, b, "", "  "); err != nil {
			return err
		}
		out.WriteByte('\n')
		_, err = f.Out.Write(out.Bytes())
		return err
	}
	enc := json.NewEncoder(f.Out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
