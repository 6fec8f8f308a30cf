//go:build linux

package testharness

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	"github.com/moltbot/moltbot-secure/services/client"
	"github.com/moltbot/moltbot-secure/services/pkiinit"
	"github.com/moltbot/moltbot-secure/services/tlsutil"
)

// LocalOptions configure a LocalStack: the daemons built by `make
// binaries` run as plain processes of the test on loopback, with a fresh
// PKI and a temp state dir each. Faster than containers, and the test owns
// the processes: it can SIGKILL one at any instant, read its /proc entry,
// give its state dir a tmpfs, or reach it from several loopback addresses
// (the containers all see one address through Docker's port mapping).
type LocalOptions struct {
	// Services to run; default secretsd, pairingd and gateway (sandboxd
	// needs the Docker socket, and the gateway reports it down without it).
	Services []string
	// BinDir holds the binaries; default <repo>/bin (found from the working
	// directory upwards by go.work).
	BinDir string
	// Env adds environment per service.
	Env map[string]map[string]string
	// StateDirs replaces a service's state dir (e.g. a small tmpfs). The
	// directory is the caller's: Close leaves it.
	StateDirs map[string]string
	// GatewayConfig, when set, is written to the gateway's moltbot.json
	// before it starts.
	GatewayConfig []byte
	// StartTimeout bounds the wait for each service's health; default 20 s.
	StartTimeout time.Duration
}

// LocalStack is a set of daemons running as local processes.
type LocalStack struct {
	opts    LocalOptions
	baseDir string
	pkiDir  string
	binDir  string

	mu    sync.Mutex
	procs map[string]*localProc
}

type localProc struct {
	svc   string
	addr  string
	ui    string // the gateway's Control UI listener
	state string
	log   string
	cmd   *exec.Cmd
	done  chan struct{} // closed when cmd has been waited for
}

// StartLocal is NewLocal for a test: closed when t ends, the daemons' logs
// printed if t failed.
func StartLocal(t testing.TB, opts LocalOptions) *LocalStack {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := NewLocal(ctx, opts)
	if err != nil {
		t.Fatalf("start local stack: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs of the local stack in %s:\n%s", l.baseDir, l.AllLogs())
		}
		if err := l.Close(); err != nil {
			t.Errorf("close local stack: %v", err)
		}
	})
	return l
}

// NewLocal makes the PKI, picks a free loopback port per service and starts
// them (the internal ones first, then the gateway), each waited for until
// its gRPC health answers SERVING.
func NewLocal(ctx context.Context, opts LocalOptions) (l *LocalStack, err error) {
	if len(opts.Services) == 0 {
		opts.Services = []string{Secretsd, Pairingd, Gateway}
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 20 * time.Second
	}
	bin := opts.BinDir
	if bin == "" {
		if bin, err = repoBin(); err != nil {
			return nil, err
		}
	}
	for _, svc := range opts.Services {
		if _, ok := Ports()[svc]; !ok {
			return nil, fmt.Errorf("testharness: unknown service %q (want one of %s)", svc, strings.Join(Services(), ", "))
		}
		if _, err := os.Stat(filepath.Join(bin, svc)); err != nil {
			return nil, fmt.Errorf("binary %s: %w (run `make binaries`)", filepath.Join(bin, svc), err)
		}
	}
	l = &LocalStack{opts: opts, binDir: bin, procs: map[string]*localProc{}}
	defer func() {
		if err != nil {
			_ = l.Close()
			l = nil
		}
	}()
	if l.baseDir, err = os.MkdirTemp("", "moltbot-local-"); err != nil {
		return l, fmt.Errorf("temp dir: %w", err)
	}
	l.pkiDir = filepath.Join(l.baseDir, "pki")
	if _, err := pkiinit.Init(pkiinit.Options{PKIDir: l.pkiDir}); err != nil {
		return l, fmt.Errorf("pki init: %w", err)
	}
	for _, svc := range opts.Services {
		p := &localProc{svc: svc, state: filepath.Join(l.baseDir, "state", svc), log: filepath.Join(l.baseDir, svc+".log")}
		if d, ok := opts.StateDirs[svc]; ok {
			p.state = d
		}
		if err := os.MkdirAll(p.state, 0o700); err != nil {
			return l, fmt.Errorf("state dir: %w", err)
		}
		if p.addr, err = freePort(); err != nil {
			return l, err
		}
		if svc == Gateway {
			if p.ui, err = freePort(); err != nil {
				return l, err
			}
		}
		l.procs[svc] = p
	}
	if opts.GatewayConfig != nil {
		if p := l.procs[Gateway]; p != nil {
			if err := os.WriteFile(filepath.Join(p.state, "moltbot.json"), opts.GatewayConfig, 0o600); err != nil {
				return l, err
			}
		}
	}
	for _, gw := range []bool{false, true} {
		for _, svc := range opts.Services {
			if (svc == Gateway) == gw {
				if err := l.StartAgain(ctx, svc); err != nil {
					return l, fmt.Errorf("%w\n%s", err, l.AllLogs())
				}
			}
		}
	}
	return l, nil
}

// repoBin finds <repo>/bin from the working directory upwards.
func repoBin() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return filepath.Join(dir, "bin"), nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("testharness: no go.work above the working directory; set LocalOptions.BinDir")
		}
		dir = up
	}
}

// freePort reserves nothing: the port is free now and the service binds it
// a moment later, which is good enough on a test machine's loopback.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", loopback+":0")
	if err != nil {
		return "", fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func (l *LocalStack) proc(svc string) (*localProc, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.procs[svc]
	if p == nil {
		return nil, fmt.Errorf("%s: %w", svc, ErrNotStarted)
	}
	return p, nil
}

func (l *LocalStack) env(p *localProc) []string {
	e := map[string]string{
		"MOLTBOT_STATE_DIR": p.state,
		"MOLTBOT_PKI_DIR":   l.pkiDir,
		"MOLTBOT_ADDR":      p.addr,
	}
	if p.svc == Gateway {
		for _, dep := range []string{Secretsd, Pairingd, Sandboxd} {
			addr := loopback + ":1" // nothing listens: reported down
			if d := l.procs[dep]; d != nil {
				addr = d.addr
			}
			e["MOLTBOT_"+strings.ToUpper(dep)+"_ADDR"] = addr
		}
		e["CLAWDBOT_GATEWAY_TOKEN_FILE"] = filepath.Join(l.pkiDir, pkiinit.GatewayTokenFile)
		// Each stack's own Control UI port: parallel stacks never collide.
		e["MOLTBOT_UI_ADDR"] = p.ui
	}
	for k, v := range l.opts.Env[p.svc] {
		e[k] = v
	}
	// Only what the daemon needs: PATH and HOME, not the test's environment
	// (a CLAWDBOT_GATEWAY_TOKEN there would override the file).
	out := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + p.state}
	for k, v := range e {
		out = append(out, k+"="+v)
	}
	return out
}

// StartAgain starts svc (first start, or after Stop/Kill) on its same
// address and waits for its health.
func (l *LocalStack) StartAgain(ctx context.Context, svc string) error {
	p, err := l.proc(svc)
	if err != nil {
		return err
	}
	l.mu.Lock()
	if p.cmd != nil {
		select {
		case <-p.done:
		default:
			l.mu.Unlock()
			return fmt.Errorf("%s is running (pid %d)", svc, p.cmd.Process.Pid)
		}
	}
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		l.mu.Unlock()
		return err
	}
	cmd := exec.Command(filepath.Join(l.binDir, svc))
	cmd.Env = l.env(p)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The daemon dies with the test binary, even on a panic or timeout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		l.mu.Unlock()
		logf.Close()
		return fmt.Errorf("start %s: %w", svc, err)
	}
	done := make(chan struct{})
	p.cmd, p.done = cmd, done
	l.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	return l.waitHealthy(ctx, p, done)
}

func (l *LocalStack) waitHealthy(ctx context.Context, p *localProc, done chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, l.opts.StartTimeout)
	defer cancel()
	cfg, err := l.ClientTLS(CLI, p.svc)
	if err != nil {
		return err
	}
	cc, err := client.Dial(p.addr, cfg, "")
	if err != nil {
		return err
	}
	defer cc.Close()
	hc := healthpb.NewHealthClient(cc)
	var last error
	for {
		select {
		case <-done:
			return fmt.Errorf("%s exited before it was healthy (log: %s)", p.svc, p.log)
		default:
		}
		cctx, ccancel := context.WithTimeout(ctx, time.Second)
		resp, err := hc.Check(cctx, &healthpb.HealthCheckRequest{})
		ccancel()
		switch {
		case err != nil:
			last = err
		case resp.GetStatus() != healthpb.HealthCheckResponse_SERVING:
			last = errors.New(resp.GetStatus().String())
		default:
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not healthy: %w (last probe: %v)", p.svc, ctx.Err(), last)
		case <-done:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Kill sends SIGKILL to svc and waits until it is gone.
func (l *LocalStack) Kill(svc string) error { return l.signal(svc, syscall.SIGKILL, 10*time.Second) }

// Stop sends SIGTERM and waits up to timeout, then SIGKILL.
func (l *LocalStack) Stop(svc string, timeout time.Duration) error {
	if err := l.signal(svc, syscall.SIGTERM, timeout); err == nil {
		return nil
	}
	return l.Kill(svc)
}

func (l *LocalStack) signal(svc string, sig syscall.Signal, wait time.Duration) error {
	p, err := l.proc(svc)
	if err != nil {
		return err
	}
	l.mu.Lock()
	cmd, done := p.cmd, p.done
	l.mu.Unlock()
	if cmd == nil {
		return fmt.Errorf("%s: %w", svc, ErrNotStarted)
	}
	_ = cmd.Process.Signal(sig) // already exited is fine
	select {
	case <-done:
		return nil
	case <-time.After(wait):
		return fmt.Errorf("%s (pid %d) still running %s after %s", svc, cmd.Process.Pid, wait, sig)
	}
}

// Restart stops svc gracefully and starts it again.
func (l *LocalStack) Restart(ctx context.Context, svc string) error {
	if err := l.Stop(svc, 5*time.Second); err != nil {
		return err
	}
	return l.StartAgain(ctx, svc)
}

// Pid is svc's process id (0 when not running).
func (l *LocalStack) Pid(svc string) int {
	p, err := l.proc(svc)
	if err != nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	select {
	case <-p.done:
		return 0
	default:
		return p.cmd.Process.Pid
	}
}

// Addr is svc's listen address, "127.0.0.1:port" (kept across restarts).
func (l *LocalStack) Addr(svc string) string {
	p, err := l.proc(svc)
	if err != nil {
		return ""
	}
	return p.addr
}

// StateDir is svc's state directory.
func (l *LocalStack) StateDir(svc string) string {
	p, err := l.proc(svc)
	if err != nil {
		return ""
	}
	return p.state
}

// PKIDir holds the stack's CA, certs and tokens.
func (l *LocalStack) PKIDir() string { return l.pkiDir }

// UIURL is the gateway's Control UI, http://127.0.0.1:port (kept across restarts).
func (l *LocalStack) UIURL() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p := l.procs[Gateway]; p != nil {
		return "http://" + p.ui
	}
	return ""
}

// ConfigPath is the gateway's moltbot.json.
func (l *LocalStack) ConfigPath() string { return filepath.Join(l.StateDir(Gateway), "moltbot.json") }

// Logs is svc's stderr and stdout over all its starts.
func (l *LocalStack) Logs(svc string) string {
	p, err := l.proc(svc)
	if err != nil {
		return err.Error()
	}
	b, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// AllLogs is every service's log under a header.
func (l *LocalStack) AllLogs() string {
	var b strings.Builder
	for _, svc := range l.opts.Services {
		fmt.Fprintf(&b, "----- %s -----\n%s\n", svc, strings.TrimRight(l.Logs(svc), "\n"))
	}
	return b.String()
}

// ClientTLS presents identity id's certificate and verifies the server as
// serverName.
func (l *LocalStack) ClientTLS(id, serverName string) (*tls.Config, error) {
	src, err := tlsutil.NewSource(tlsutil.FilesFor(l.pkiDir, id))
	if err != nil {
		return nil, err
	}
	return src.ClientConfig(serverName), nil
}

// CAOnlyTLS verifies the server and presents no client certificate.
func (l *LocalStack) CAOnlyTLS(serverName string) (*tls.Config, error) {
	return tlsutil.CAOnlyClientConfig(tlsutil.FilesFor(l.pkiDir, CLI).CA, serverName)
}

// Token is the service token of identity id.
func (l *LocalStack) Token(id string) (string, error) {
	return client.ReadToken(filepath.Join(l.pkiDir, id+".token"))
}

// GatewayToken is the bootstrap gateway client token.
func (l *LocalStack) GatewayToken() (string, error) {
	return client.ReadToken(filepath.Join(l.pkiDir, pkiinit.GatewayTokenFile))
}

// Dial connects to svc with cfg and token ("" for none); add DialFrom to
// pick the source address.
func (l *LocalStack) Dial(svc string, cfg *tls.Config, token string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	p, err := l.proc(svc)
	if err != nil {
		return nil, err
	}
	return client.Dial(p.addr, cfg, token, opts...)
}

// DialFrom makes connections from a given loopback address (e.g.
// "127.0.0.2"): on Linux all of 127.0.0.0/8 is local, so each address is a
// distinct client to the per-address lockout.
func DialFrom(ip string) grpc.DialOption {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
		return d.DialContext(ctx, "tcp", addr)
	})
}

// AdminConn is a gateway connection as the owner (cli certificate and its
// own cli.token, never the gateway token), closed at cleanup.
func (l *LocalStack) AdminConn(t testing.TB, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	cfg, err := l.ClientTLS(CLI, Gateway)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := l.Token(CLI)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := l.Dial(Gateway, cfg, tok, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// AdminGateway is a Gateway client on AdminConn.
func (l *LocalStack) AdminGateway(t testing.TB, opts ...grpc.DialOption) gatewayv1.GatewayClient {
	t.Helper()
	return gatewayv1.NewGatewayClient(l.AdminConn(t, opts...))
}

// Close kills every daemon and removes the temp dir (not a caller's
// StateDirs).
func (l *LocalStack) Close() error {
	var errs []error
	for _, svc := range l.opts.Services {
		if l.Pid(svc) != 0 {
			if err := l.Kill(svc); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if l.baseDir != "" {
		if err := os.RemoveAll(l.baseDir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
