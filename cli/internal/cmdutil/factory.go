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
	"github.com/moltbot/moltbot-secure/services/statedir"
	"github.com/moltbot/moltbot-secure/services/tlsutil"
)

// Env names the CLI reads.
const (
	EnvGatewayToken = "CLAWDBOT_GATEWAY_TOKEN"
	EnvGatewayAddr  = "MOLTBOT_GATEWAY"
	// GatewayTokenFile is the bootstrap client token `certs init` writes in the pki dir.
	GatewayTokenFile = "gateway-auth.token"
)

// ErrNoGatewayToken: the CLI has no token to call the gateway with; the
// commands that can work offline (audit, migrate, rollback, validate) do.
var ErrNoGatewayToken = errors.New("no gateway token")

// Factory builds dependencies lazily so --help and flag errors never dial.
type Factory struct {
	StateDirFlag string
	GatewayAddr  string
	JSON         bool
	Out          io.Writer
	Err          io.Writer

	mu   sync.Mutex
	conn *grpc.ClientConn
}

// New returns a factory writing to stdout/stderr.
func New() *Factory {
	addr := os.Getenv(EnvGatewayAddr)
	if addr == "" {
		addr = "127.0.0.1:18789"
	}
	return &Factory{GatewayAddr: addr, Out: os.Stdout, Err: os.Stderr}
}

// StateDir resolves the state dir.
func (f *Factory) StateDir() (string, error) { return statedir.Resolve(f.StateDirFlag) }

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
	if t := strings.TrimSpace(os.Getenv(EnvGatewayToken)); t != "" {
		return t, nil
	}
	pki, err := f.PKIDir()
	if err != nil {
		return "", err
	}
	t, err := client.ReadToken(filepath.Join(pki, GatewayTokenFile))
	if err != nil {
		return "", fmt.Errorf("%w: set %s (or run `moltbot certs init`): %w", ErrNoGatewayToken, EnvGatewayToken, err)
	}
	return t, nil
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
	if err := client.CheckAddr(f.GatewayAddr); err != nil {
		return nil, &UsageError{Err: fmt.Errorf("--gateway: %w", err)}
	}
	pki, err := f.PKIDir()
	if err != nil {
		return nil, err
	}
	host, _, _ := net.SplitHostPort(f.GatewayAddr)
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
		if token, err = client.ReadToken(filepath.Join(pki, auth.IDCLI+".token")); err != nil {
			return nil, err
		}
		tlsCfg = src.ClientConfig(host)
	} else {
		if token, err = f.GatewayToken(); err != nil {
			return nil, err
		}
		if tlsCfg, err = tlsutil.CAOnlyClientConfig(files.CA, host); err != nil {
			return nil, err
		}
	}
	cc, err := client.Dial(f.GatewayAddr, tlsCfg, token,
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

// Exit codes.
const (
	ExitOK       = 0
	ExitError    = 1
	ExitUsage    = 2
	ExitDegraded = 3 // the command ran but found something down or below a bar
)

// UsageError is a bad flag or argument.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// DegradedError reports that the command worked but the result is bad
// (a service down, a score under --min-score). Its message is already printed.
type DegradedError struct{ Msg string }

func (e *DegradedError) Error() string { return e.Msg }

// ExitCode maps an error to the documented exit code.
func ExitCode(err error) int {
	var u *UsageError
	var d *DegradedError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &u):
		return ExitUsage
	case errors.As(err, &d):
		return ExitDegraded
	default:
		return ExitError
	}
}
