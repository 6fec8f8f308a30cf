// Package cmdutil holds what every CLI command shares: the lazily built
// gateway client, output helpers and typed errors mapped to exit codes.
package cmdutil

import (
	"bytes"
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

// Gateway returns the shared connection to the gateway. With the admin
// cert (pki/cli.pem) present the CLI presents it and becomes the admin
// identity; without it, it verifies the server only.
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
	var src *tlsutil.Source
	if fileExists(files.Cert) && fileExists(files.Key) {
		src, err = tlsutil.NewSource(files)
		if err != nil {
			return nil, err
		}
	}
	token, err := f.GatewayToken()
	if err != nil {
		return nil, err
	}
	var cc *grpc.ClientConn
	if src != nil {
		cc, err = client.Dial(f.GatewayAddr, src.ClientConfig(host), token)
	} else {
		cfg, cerr := tlsutil.CAOnlyClientConfig(files.CA, host)
		if cerr != nil {
			return nil, cerr
		}
		cc, err = client.Dial(f.GatewayAddr, cfg, token)
	}
	if err != nil {
		return nil, err
	}
	f.conn = cc
	return cc, nil
}

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
