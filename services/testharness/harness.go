// Package testharness starts the built moltbot images (make images) on a
// private Docker network with a fresh PKI made on the host, the way
// docker-compose.yml runs them, and hands integration tests ready clients.
//
// Nothing is ever pulled: every image is checked locally first, Ryuk is
// disabled (its image would need a pull) and containers are removed by
// Close. Each Stack gets its own network, containers and temp dir, all named
// with a random prefix, so stacks can run side by side.
//
// Every host connection reaches a container from one address (Docker's port
// mapping), and each service locks an address out after 10 failed
// authentications a minute: tests sharing a stack must stay under that per
// service, and a test that needs more starts its own stack.
package testharness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
	"github.com/testcontainers/testcontainers-go/network"

	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/pkiinit"
	"github.com/moltbot/moltbot-secure/services/tlsutil"
)

// Service names, also their network aliases and cert identities.
const (
	Gateway  = auth.IDGateway
	Secretsd = auth.IDSecretsd
	Pairingd = auth.IDPairingd
	Sandboxd = auth.IDSandboxd
	CLI      = auth.IDCLI
)

// Services are the four daemons in start order of the compose file.
func Services() []string { return []string{Secretsd, Pairingd, Sandboxd, Gateway} }

// UIDs are the uid:gid each identity runs as in docker-compose.yml.
func UIDs() map[string]int {
	return map[string]int{Gateway: 65101, Secretsd: 65102, Pairingd: 65103, Sandboxd: 65104, CLI: 65105}
}

// Ports are the listen ports inside the containers (docker-compose.yml).
func Ports() map[string]int {
	return map[string]int{Gateway: 18789, Secretsd: 18790, Pairingd: 18791, Sandboxd: 18792}
}

// Image returns the image of a service (or CLI) built by `make images`.
func Image(svc, tag string) string {
	if tag == "" {
		tag = "latest"
	}
	if svc == CLI {
		return "moltbot-cli:" + tag
	}
	return "moltbot-" + svc + ":" + tag
}

// ErrNotStarted is returned for a service the stack did not start.
var ErrNotStarted = errors.New("service not started")

// Options configure a Stack.
type Options struct {
	// Services to start; default all four. The gateway needs secretsd (it
	// refuses to start without it); pairingd and sandboxd may be left out,
	// the gateway then reports them down.
	Services []string
	// Service holds per-service extras (env, state files, binds).
	Service map[string]ServiceOptions
	// GatewayConfig, when set, is written to the gateway's /state/moltbot.json
	// before it starts.
	GatewayConfig []byte
	// ImageTag of the moltbot-* images; default "latest".
	ImageTag string
	// StartTimeout bounds the wait for each service's health; default 30 s.
	StartTimeout time.Duration
}

// ServiceOptions are extras for one service container.
type ServiceOptions struct {
	// Env is added to (and overrides) the compose environment, e.g.
	// CLAWDBOT_GATEWAY_TOKEN for a bad-token test.
	Env map[string]string
	// StateFiles are written under the service's /state before it starts
	// (relative path -> content), owned by the service's uid, mode 0600.
	StateFiles map[string][]byte
	// Binds are extra "host:container[:ro]" bind mounts.
	Binds []string
	// GroupAdd are extra groups (compose group_add), e.g. the secret-files
	// group 65110 shared by secretsd and the gateway.
	GroupAdd []string
	// PKIDir replaces the stack's PKI dir mounted at /pki (e.g. an empty
	// dir for the missing-certs test).
	PKIDir string
	// Cmd replaces the image's arguments.
	Cmd []string
	// Image replaces the service's image (e.g. a test-only gateway build).
	Image string
}

// Stack is one running set of services.
type Stack struct {
	opts    Options
	name    string // prefix of every Docker object
	baseDir string
	pkiDir  string
	net     *testcontainers.DockerNetwork
	docker  *testcontainers.DockerClient
	logger  tclog.Logger

	mu         sync.Mutex
	containers map[string]*testcontainers.DockerContainer

	foreignOnce sync.Once
	foreignDir  string
	foreignErr  error
}

// Start is New for a test: the stack is closed when t ends, and every
// container's log is printed if t failed.
func Start(t testing.TB, opts Options) *Stack {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := New(ctx, opts)
	if err != nil {
		t.Fatalf("start stack: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("close stack: %v", err)
		}
	})
	s.LogOnFailure(t)
	return s
}

// New makes a fresh PKI, a private network, and starts the services (the
// internal ones in parallel, then the gateway), each waited for until its
// gRPC health answers SERVING. On error everything already created is
// removed.
func New(ctx context.Context, opts Options) (s *Stack, err error) {
	// Ryuk is an image that would have to be pulled; cleanup is ours.
	if os.Getenv("TESTCONTAINERS_RYUK_DISABLED") == "" {
		if err := os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true"); err != nil {
			return nil, err
		}
	}
	if len(opts.Services) == 0 {
		opts.Services = Services()
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 30 * time.Second
	}
	if opts.ImageTag == "" {
		// Parallel worktrees build their own images under their own tag.
		opts.ImageTag = os.Getenv("MOLTBOT_IMAGE_TAG")
	}
	for _, svc := range opts.Services {
		if _, ok := Ports()[svc]; !ok {
			return nil, fmt.Errorf("testharness: unknown service %q (want one of %s)", svc, strings.Join(Services(), ", "))
		}
	}
	s = &Stack{opts: opts, name: "moltbot-it-" + randHex(4), logger: tclog.NewNoopLogger(),
		containers: map[string]*testcontainers.DockerContainer{}}
	defer func() {
		if err != nil {
			cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = s.Close(cctx)
			s = nil
		}
	}()
	if s.baseDir, err = os.MkdirTemp("", s.name+"-"); err != nil {
		return s, fmt.Errorf("temp dir: %w", err)
	}
	if s.docker, err = testcontainers.NewDockerClientWithOpts(ctx); err != nil {
		return s, fmt.Errorf("docker client (is the engine running?): %w", err)
	}
	if err := s.checkImages(ctx, append(append([]string{}, opts.Services...), CLI)); err != nil {
		return s, err
	}
	if err := s.makePKI(); err != nil {
		return s, err
	}
	for _, svc := range opts.Services {
		if err := s.makeStateDir(svc); err != nil {
			return s, err
		}
	}
	if opts.GatewayConfig != nil {
		if err := s.writeStateFile(Gateway, "moltbot.json", opts.GatewayConfig); err != nil {
			return s, err
		}
	}
	s.net, err = network.New(ctx, network.WithLabels(map[string]string{"moltbot.test": s.name}))
	if err != nil {
		return s, fmt.Errorf("create network: %w", err)
	}
	// The internal services at once, then the gateway once they are
	// healthy: it refuses to start without secretsd (compose orders them
	// the same way with depends_on: service_healthy).
	var first, then []string
	for _, svc := range opts.Services {
		if svc == Gateway {
			then = append(then, svc)
		} else {
			first = append(first, svc)
		}
	}
	for _, phase := range [][]string{first, then} {
		if err := s.startAll(ctx, phase); err != nil {
			return s, fmt.Errorf("%w\n%s", err, s.AllLogs(context.Background()))
		}
	}
	return s, nil
}

// startAll starts svcs in parallel and waits for all of them.
func (s *Stack) startAll(ctx context.Context, svcs []string) error {
	errc := make(chan error, len(svcs))
	for _, svc := range svcs {
		go func() { errc <- s.startService(ctx, svc) }()
	}
	var errs []error
	for range svcs {
		if err := <-errc; err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// checkImages refuses to go on when an image is missing: testcontainers
// would otherwise try to pull it, and nothing may be pulled.
func (s *Stack) checkImages(ctx context.Context, svcs []string) error {
	for _, svc := range svcs {
		img := Image(svc, s.opts.ImageTag)
		if so := s.opts.Service[svc]; so.Image != "" {
			img = so.Image
		}
		if _, err := s.docker.ImageInspect(ctx, img); err != nil {
			return fmt.Errorf("image %s is not available locally (run `make images`; nothing is pulled): %w", img, err)
		}
	}
	return nil
}

// makePKI runs the same init as the compose stack's init service: CA,
// leaves and tokens, each key chowned to its service's uid with mode 0400.
func (s *Stack) makePKI() error {
	s.pkiDir = filepath.Join(s.baseDir, "pki")
	owners := map[string]tlsutil.Owner{}
	for id, uid := range UIDs() {
		owners[id] = tlsutil.Owner{UID: uid, GID: uid}
	}
	if _, err := pkiinit.Init(pkiinit.Options{PKIDir: s.pkiDir, Owners: owners}); err != nil {
		return fmt.Errorf("pki init: %w", err)
	}
	// Like a fresh named volume's root: traversable by every service uid,
	// which then reads only its own 0400 files.
	return os.Chmod(s.pkiDir, 0o755)
}

func (s *Stack) makeStateDir(svc string) error {
	if err := mkdirOwned(s.StateDir(svc), UIDs()[svc]); err != nil {
		return err
	}
	for rel, b := range s.opts.Service[svc].StateFiles {
		if err := s.writeStateFile(svc, rel, b); err != nil {
			return err
		}
	}
	return nil
}

// mkdirOwned makes a 0700 dir owned by uid:uid (a service's /state).
func mkdirOwned(dir string, uid int) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state dir %s: %w", dir, err)
	}
	if err := os.Chown(dir, uid, uid); err != nil {
		return fmt.Errorf("chown %s: %w", dir, err)
	}
	return nil
}

// writeStateFile writes a file under svc's state dir owned by its uid.
func (s *Stack) writeStateFile(svc, rel string, b []byte) error {
	p := filepath.Join(s.StateDir(svc), filepath.FromSlash(rel))
	uid := UIDs()[svc]
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("state file %s: %w", p, err)
	}
	for d := filepath.Dir(p); d != s.StateDir(svc) && strings.HasPrefix(d, s.StateDir(svc)); d = filepath.Dir(d) {
		if err := os.Chown(d, uid, uid); err != nil {
			return fmt.Errorf("chown %s: %w", d, err)
		}
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return os.Chown(p, uid, uid)
}

// WriteStateFile places a file in a service's /state (the service may be
// running; use Restart when it only reads the file at start).
func (s *Stack) WriteStateFile(svc, rel string, b []byte) error { return s.writeStateFile(svc, rel, b) }

// Name is the prefix of every Docker object of this stack, and sandboxd's
// default MOLTBOT_SANDBOX_INSTANCE (so its sandbox containers are removed
// by Close).
func (s *Stack) Name() string { return s.name }

// PKIDir is the host directory holding the stack's CA, certs and tokens.
func (s *Stack) PKIDir() string { return s.pkiDir }

// StateDir is the host directory mounted at svc's /state.
func (s *Stack) StateDir(svc string) string { return filepath.Join(s.baseDir, "state", svc) }

// Network is the name of the stack's Docker network.
func (s *Stack) Network() string { return s.net.Name }

// Container returns the running container of svc (nil if not started).
func (s *Stack) Container(svc string) *testcontainers.DockerContainer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.containers[svc]
}

// Docker is the stack's Docker client (moby client embedded).
func (s *Stack) Docker() *testcontainers.DockerClient { return s.docker }

// Close removes the containers, the network and the temp dir.
func (s *Stack) Close(ctx context.Context) error {
	s.mu.Lock()
	ctrs := s.containers
	s.containers = map[string]*testcontainers.DockerContainer{}
	s.mu.Unlock()
	var wg sync.WaitGroup
	errc := make(chan error, len(ctrs)+3)
	for svc, c := range ctrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Terminate(ctx, testcontainers.StopTimeout(3*time.Second)); err != nil {
				errc <- fmt.Errorf("remove %s: %w", svc, err)
			}
		}()
	}
	wg.Wait()
	if s.docker != nil {
		// sandboxd's containers are not ours to terminate above.
		if err := s.RemoveSandboxContainers(ctx, s.name); err != nil {
			errc <- err
		}
	}
	if s.net != nil {
		if err := s.net.Remove(ctx); err != nil {
			errc <- fmt.Errorf("remove network: %w", err)
		}
		s.net = nil
	}
	if s.docker != nil {
		_ = s.docker.Close()
		s.docker = nil
	}
	for _, d := range []string{s.baseDir, s.foreignDir} {
		if d != "" {
			if err := os.RemoveAll(d); err != nil {
				errc <- err
			}
		}
	}
	close(errc)
	var errs []error
	for err := range errc {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// LogOnFailure prints every container's log when t fails.
func (s *Stack) LogOnFailure(t testing.TB) {
	t.Cleanup(func() {
		if t.Failed() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			t.Logf("container logs of stack %s:\n%s", s.name, s.AllLogs(ctx))
		}
	})
}

// AllLogs returns the logs of every container, each under a header.
func (s *Stack) AllLogs(ctx context.Context) string {
	s.mu.Lock()
	svcs := make([]string, 0, len(s.containers))
	for svc := range s.containers {
		svcs = append(svcs, svc)
	}
	s.mu.Unlock()
	sort.Strings(svcs)
	var b strings.Builder
	for _, svc := range svcs {
		logs, err := s.Logs(ctx, svc)
		if err != nil {
			logs = "(logs: " + err.Error() + ")"
		}
		fmt.Fprintf(&b, "----- %s -----\n%s\n", svc, strings.TrimRight(logs, "\n"))
	}
	return b.String()
}

// Logs returns svc's container log (stdout and stderr).
func (s *Stack) Logs(ctx context.Context, svc string) (string, error) {
	c := s.Container(svc)
	if c == nil {
		return "", fmt.Errorf("%s: %w", svc, ErrNotStarted)
	}
	return containerLogs(ctx, c)
}

func containerLogs(ctx context.Context, c *testcontainers.DockerContainer) (string, error) {
	rc, err := c.Logs(ctx)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return string(b), err
}

// socketGID is the group of the host's Docker socket, which sandboxd gets
// as a supplementary group (compose: group_add DOCKER_GID).
func socketGID() (int, error) {
	fi, err := os.Stat("/var/run/docker.sock")
	if err != nil {
		return 0, fmt.Errorf("docker socket: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, errors.New("docker socket: no owner information")
	}
	return int(st.Gid), nil
}
