package server

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/client"
	"github.com/moltbot/moltbot-secure/services/statedir"
	"github.com/moltbot/moltbot-secure/services/tlsutil"
)

// Base holds the flags every daemon shares.
type Base struct {
	Name     string // identity and service name ("secretsd")
	Addr     string
	StateDir string
	PKIDir   string
	LogLevel string
	LogJSON  bool
	Version  string
}

// Flags registers the shared flags; env MOLTBOT_<NAME>_ADDR etc. are read by Env.
func (b *Base) Flags(fs *flag.FlagSet, defaultAddr string) {
	fs.StringVar(&b.Addr, "addr", envOr("MOLTBOT_ADDR", defaultAddr), "listen address host:port")
	fs.StringVar(&b.StateDir, "state-dir", os.Getenv(statedir.EnvStateDir), "state directory (default ~/.moltbot)")
	fs.StringVar(&b.PKIDir, "pki-dir", os.Getenv("MOLTBOT_PKI_DIR"), "directory with CA, certs and service tokens (default <state-dir>/pki)")
	fs.StringVar(&b.LogLevel, "log-level", envOr("MOLTBOT_LOG_LEVEL", "info"), "log level: trace, debug, info, warn, error")
	fs.BoolVar(&b.LogJSON, "log-json", os.Getenv("MOLTBOT_LOG_JSON") == "1", "log JSON lines")
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// Loaded is the material a daemon loads before serving.
type Loaded struct {
	Base     Base
	Logger   hclog.Logger
	TLS      *tlsutil.Source
	Tokens   *auth.ServiceTokens
	OwnToken string
}

// Load resolves dirs, loads the identity's certs and the service token
// digests, and builds the logger. Every error is one line naming the fix.
func (b Base) Load() (*Loaded, error) {
	dir, err := statedir.Resolve(b.StateDir)
	if err != nil {
		return nil, err
	}
	b.StateDir = dir
	if b.PKIDir == "" {
		b.PKIDir = filepath.Join(dir, "pki")
	}
	if level := hclog.LevelFromString(b.LogLevel); level == hclog.NoLevel {
		return nil, fmt.Errorf("--log-level %q: use trace, debug, info, warn or error", b.LogLevel)
	}
	logger := hclog.New(&hclog.LoggerOptions{
		Name: b.Name, Level: hclog.LevelFromString(b.LogLevel), JSONFormat: b.LogJSON, Output: os.Stderr,
	})
	// Seed section 5: each daemon tightens its own state dir before it
	// reads anything from it; the pki mount is checked, not changed.
	if _, err := os.Stat(dir); err == nil {
		if _, err := statedir.FixAtStart(dir, b.PKIDir, logger); err != nil {
			return nil, fmt.Errorf("fix state dir permissions: %w", err)
		}
	}
	src, err := tlsutil.NewSource(tlsutil.FilesFor(b.PKIDir, b.Name))
	if err != nil {
		return nil, err
	}
	toks, err := auth.LoadServiceTokens(filepath.Join(b.PKIDir, auth.TokenDigestsFile))
	if err != nil {
		return nil, err
	}
	own, err := client.ReadToken(TokenFile(b.PKIDir, b.Name))
	if err != nil {
		return nil, err
	}
	return &Loaded{Base: b, Logger: logger, TLS: src, Tokens: toks, OwnToken: own}, nil
}

// TokenFile is the service token of identity id.
func TokenFile(pkiDir, id string) string { return filepath.Join(pkiDir, id+".token") }

// InternalServer builds a strict-mTLS server for an internal service.
func (l *Loaded) InternalServer(authz auth.Table, register func(grpc.ServiceRegistrar)) (*Server, error) {
	return New(Config{
		Name:     l.Base.Name,
		Addr:     l.Base.Addr,
		TLS:      l.TLS.ServerConfig(tls.RequireAndVerifyClientCert),
		Auth:     &auth.Authenticator{Verifier: l.Tokens, Limiter: auth.NewLimiter()},
		Authz:    authz,
		Logger:   l.Logger,
		Register: register,
		Version:  l.Base.Version,
	})
}

// DialService dials another internal service as this identity.
func (l *Loaded) DialService(id, addr string) (*grpc.ClientConn, error) {
	return client.Dial(addr, l.TLS.ClientConfig(id), l.OwnToken)
}

// SignalContext ends on SIGINT or SIGTERM.
func SignalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// Healthcheck dials the daemon's own grpc.health.v1 over TLS as itself and
// succeeds only on SERVING. It is the container healthcheck (scratch images
// have no shell).
func Healthcheck(b Base, serverName string) error {
	ld, err := b.loadTLSOnly()
	if err != nil {
		return err
	}
	addr := b.Addr
	if host, port, err := splitHostPort(addr); err == nil && (host == "" || host == "0.0.0.0" || host == "::") {
		addr = "127.0.0.1:" + port
	}
	cc, err := client.Dial(addr, ld.ClientConfig(serverName), "")
	if err != nil {
		return err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return fmt.Errorf("health check %s: %w", addr, err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return errors.New("health check: " + resp.GetStatus().String())
	}
	return nil
}

func (b Base) loadTLSOnly() (*tlsutil.Source, error) {
	dir, err := statedir.Resolve(b.StateDir)
	if err != nil {
		return nil, err
	}
	if b.PKIDir == "" {
		b.PKIDir = filepath.Join(dir, "pki")
	}
	return tlsutil.NewSource(tlsutil.FilesFor(b.PKIDir, b.Name))
}

// Exit prints one line and exits non-zero: the daemons' error path.
func Exit(name string, err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
	os.Exit(1)
}

// Main is every daemon's main after its flags are declared on fs:
// `<name> healthcheck [flags]` checks the running daemon (the container
// healthcheck); anything else parses the flags and calls run. An error is
// one line on stderr and exit code 1.
func Main(b *Base, fs *flag.FlagSet, run func() error) {
	args := os.Args[1:]
	check := len(args) > 0 && args[0] == "healthcheck"
	if check {
		args = args[1:]
	}
	_ = fs.Parse(args) // flag.ExitOnError: a bad flag exits 2 with usage
	var err error
	if check {
		err = Healthcheck(*b, b.Name)
	} else {
		err = run()
	}
	if err != nil {
		Exit(b.Name, err)
	}
}
