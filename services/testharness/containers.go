package testharness

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	mobynet "github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	clientpkg "github.com/moltbot/moltbot-secure/services/client"
)

// env is the compose environment of svc plus the test's extras.
func (s *Stack) env(svc string, extra map[string]string) map[string]string {
	e := map[string]string{
		"MOLTBOT_STATE_DIR": "/state",
		"MOLTBOT_PKI_DIR":   "/pki",
		"MOLTBOT_ADDR":      "0.0.0.0:" + strconv.Itoa(Ports()[svc]),
	}
	if svc == Gateway {
		for _, dep := range []string{Secretsd, Pairingd, Sandboxd} {
			e["MOLTBOT_"+strings.ToUpper(dep)+"_ADDR"] = dep + ":" + strconv.Itoa(Ports()[dep])
		}
		e["CLAWDBOT_GATEWAY_TOKEN_FILE"] = "/pki/gateway-auth.token"
	}
	if svc == Sandboxd {
		// Its sandbox containers carry the stack's name; Close removes them.
		e["MOLTBOT_SANDBOX_INSTANCE"] = s.name
	}
	maps.Copy(e, extra)
	return e
}

// request builds the container options for svc as docker-compose.yml runs
// it: own uid, read-only root, no capabilities, no-new-privileges, /pki
// read-only, a writable /state, the port published on 127.0.0.1 only.
func (s *Stack) request(svc, alias, stateDir string, so ServiceOptions, waitFor wait.Strategy) ([]testcontainers.ContainerCustomizer, error) {
	uid := strconv.Itoa(UIDs()[svc])
	pki := s.pkiDir
	if so.PKIDir != "" {
		pki = so.PKIDir
	}
	binds := []string{pki + ":/pki:ro", stateDir + ":/state"}
	var groups []string
	if svc == Sandboxd {
		gid, err := socketGID()
		if err != nil {
			return nil, err
		}
		binds = append(binds, "/var/run/docker.sock:/var/run/docker.sock")
		groups = append(groups, strconv.Itoa(gid))
	}
	binds = append(binds, so.Binds...)
	groups = append(groups, so.GroupAdd...)
	port := strconv.Itoa(Ports()[svc]) + "/tcp"
	opts := []testcontainers.ContainerCustomizer{
		testcontainers.WithLogger(s.logger),
		testcontainers.WithName(s.name + "-" + svc + "-" + randHex(2)),
		testcontainers.WithLabels(map[string]string{"moltbot.test": s.name}),
		network.WithNetwork([]string{alias}, s.net),
		testcontainers.WithEnv(s.env(svc, so.Env)),
		testcontainers.WithExposedPorts(port),
		testcontainers.WithConfigModifier(func(c *container.Config) {
			c.User = uid + ":" + uid
			// The compose healthcheck, so `docker ps` and inspect report
			// health as under compose. Readiness is probed from the host
			// (faster: Engine 20.10 runs the first check one interval in).
			c.Healthcheck = &container.HealthConfig{
				Test:     []string{"CMD", "/" + svc, "healthcheck"},
				Interval: time.Second, Timeout: 2 * time.Second, Retries: 30,
			}
		}),
		testcontainers.WithHostConfigModifier(func(h *container.HostConfig) {
			h.Binds = append(h.Binds, binds...)
			h.ReadonlyRootfs = true
			h.CapDrop = []string{"ALL"}
			h.SecurityOpt = []string{"no-new-privileges:true"}
			h.GroupAdd = groups
			h.PortBindings = mobynet.PortMap{mobynet.MustParsePort(port): {{HostIP: netip.MustParseAddr(loopback), HostPort: "0"}}}
		}),
		testcontainers.WithWaitStrategyAndDeadline(s.opts.StartTimeout, waitFor),
	}
	if len(so.Cmd) > 0 {
		opts = append(opts, testcontainers.WithCmd(so.Cmd...))
	}
	return opts, nil
}

const loopback = "127.0.0.1"

func (s *Stack) startService(ctx context.Context, svc string) error {
	opts, err := s.request(svc, svc, s.StateDir(svc), s.opts.Service[svc], &healthProbe{s: s, svc: svc})
	if err != nil {
		return err
	}
	img := Image(svc, s.opts.ImageTag)
	if so := s.opts.Service[svc]; so.Image != "" {
		img = so.Image
	}
	c, err := testcontainers.Run(ctx, img, opts...)
	if c != nil {
		s.mu.Lock()
		s.containers[svc] = c
		s.mu.Unlock()
	}
	if err != nil {
		return fmt.Errorf("start %s: %w", svc, err)
	}
	return nil
}

// healthProbe waits until the service answers grpc.health.v1 SERVING on
// its published port, over mTLS as the cli identity (health needs no
// token). It fails at once when the container exits.
type healthProbe struct {
	s   *Stack
	svc string
}

func (p *healthProbe) WaitUntilReady(ctx context.Context, target wait.StrategyTarget) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		st, err := target.State(ctx)
		if err != nil {
			return fmt.Errorf("%s: state: %w", p.svc, err)
		}
		if !st.Running {
			return fmt.Errorf("%s exited with code %d before it was healthy", p.svc, st.ExitCode)
		}
		if last = p.check(ctx, target); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not healthy: %w (last probe: %v)", p.svc, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

func (p *healthProbe) check(ctx context.Context, target wait.StrategyTarget) error {
	mp, err := target.MappedPort(ctx, strconv.Itoa(Ports()[p.svc])+"/tcp")
	if err != nil {
		return err
	}
	cfg, err := p.s.ClientTLS(CLI, p.svc)
	if err != nil {
		return err
	}
	cc, err := clientpkg.Dial(loopback+":"+mp.Port(), cfg, "")
	if err != nil {
		return err
	}
	defer cc.Close()
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(cc).Check(cctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return err
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return errors.New(resp.GetStatus().String())
	}
	return nil
}

// Addr is svc's published port on the host, "127.0.0.1:port". It is read
// fresh each time: a restarted container gets a new host port.
func (s *Stack) Addr(ctx context.Context, svc string) (string, error) {
	c := s.Container(svc)
	if c == nil {
		return "", fmt.Errorf("%s: %w", svc, ErrNotStarted)
	}
	mp, err := c.MappedPort(ctx, strconv.Itoa(Ports()[svc])+"/tcp")
	if err != nil {
		return "", fmt.Errorf("%s port: %w", svc, err)
	}
	return loopback + ":" + mp.Port(), nil
}

// Stop stops svc gracefully (SIGTERM, then SIGKILL after timeout).
func (s *Stack) Stop(ctx context.Context, svc string, timeout time.Duration) error {
	c := s.Container(svc)
	if c == nil {
		return fmt.Errorf("%s: %w", svc, ErrNotStarted)
	}
	return c.Stop(ctx, &timeout)
}

// Kill sends SIGKILL to svc and waits until it is down.
func (s *Stack) Kill(ctx context.Context, svc string) error {
	c := s.Container(svc)
	if c == nil {
		return fmt.Errorf("%s: %w", svc, ErrNotStarted)
	}
	if _, err := s.docker.ContainerKill(ctx, c.GetContainerID(), client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		return fmt.Errorf("kill %s: %w", svc, err)
	}
	for {
		st, err := c.State(ctx)
		if err != nil {
			return err
		}
		if !st.Running {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// StartAgain starts a stopped or killed svc and waits for its health.
// Its host port changes: call Addr again.
func (s *Stack) StartAgain(ctx context.Context, svc string) error {
	c := s.Container(svc)
	if c == nil {
		return fmt.Errorf("%s: %w", svc, ErrNotStarted)
	}
	return c.Start(ctx)
}

// Restart stops svc gracefully and starts it again, waiting for health.
func (s *Stack) Restart(ctx context.Context, svc string) error {
	if err := s.Stop(ctx, svc, 5*time.Second); err != nil {
		return err
	}
	return s.StartAgain(ctx, svc)
}

// DockerHealth is svc's Docker healthcheck status ("starting", "healthy",
// "unhealthy"), from the compose-equivalent healthcheck in the image run.
func (s *Stack) DockerHealth(ctx context.Context, svc string) (string, error) {
	c := s.Container(svc)
	if c == nil {
		return "", fmt.Errorf("%s: %w", svc, ErrNotStarted)
	}
	st, err := c.State(ctx)
	if err != nil {
		return "", err
	}
	if st.Health == nil {
		return "", fmt.Errorf("%s has no healthcheck", svc)
	}
	return string(st.Health.Status), nil
}

// WaitDockerHealthy polls the Docker healthcheck of each svc until all
// report healthy (the first check runs one interval, 1 s, after start).
func (s *Stack) WaitDockerHealthy(ctx context.Context, svcs ...string) error {
	for _, svc := range svcs {
		for {
			h, err := s.DockerHealth(ctx, svc)
			if err != nil {
				return err
			}
			if h == string(container.Healthy) {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s docker health %q: %w", svc, h, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// Exit is the outcome of a one-shot container.
type Exit struct {
	Code int
	Logs string
}

// RunOnce runs svc as an extra container on the stack's network (alias
// svc+"-once", so it never shadows the running one), waits for it to exit
// and returns its exit code and log. For start-up failures: bad token,
// missing certs.
func (s *Stack) RunOnce(ctx context.Context, svc string, so ServiceOptions, timeout time.Duration) (Exit, error) {
	if err := s.checkImages(ctx, []string{svc}); err != nil {
		return Exit{}, err
	}
	// A state dir of its own, so the shared service's state is untouched.
	once := svc + "-once-" + randHex(2)
	if err := mkdirOwned(s.StateDir(once), UIDs()[svc]); err != nil {
		return Exit{}, err
	}
	opts, err := s.request(svc, once, s.StateDir(once), so, wait.ForExit().WithExitTimeout(timeout))
	if err != nil {
		return Exit{}, err
	}
	return s.runToExit(ctx, Image(svc, s.opts.ImageTag), opts)
}

// RunCLI runs `moltbot args...` from the cli image inside the stack's
// network as docker-compose.yml's cli service does (uid 65105, the PKI at
// /state/pki read-only, MOLTBOT_GATEWAY=gateway:18789), so the call comes
// from a container address, not the host's.
func (s *Stack) RunCLI(ctx context.Context, env map[string]string, args ...string) (Exit, error) {
	uid := strconv.Itoa(UIDs()[CLI])
	e := map[string]string{"MOLTBOT_STATE_DIR": "/state", "MOLTBOT_GATEWAY": Gateway + ":" + strconv.Itoa(Ports()[Gateway])}
	maps.Copy(e, env)
	opts := []testcontainers.ContainerCustomizer{
		testcontainers.WithLogger(s.logger),
		testcontainers.WithName(s.name + "-cli-" + randHex(2)),
		testcontainers.WithLabels(map[string]string{"moltbot.test": s.name}),
		network.WithNetwork([]string{"cli-" + randHex(2)}, s.net),
		testcontainers.WithEnv(e),
		testcontainers.WithCmd(args...),
		testcontainers.WithConfigModifier(func(c *container.Config) { c.User = uid + ":" + uid }),
		testcontainers.WithHostConfigModifier(func(h *container.HostConfig) {
			h.Binds = append(h.Binds, s.pkiDir+":/state/pki:ro")
			h.ReadonlyRootfs = true
			h.CapDrop = []string{"ALL"}
			h.SecurityOpt = []string{"no-new-privileges:true"}
		}),
		testcontainers.WithWaitStrategy(wait.ForExit().WithExitTimeout(30 * time.Second)),
	}
	res, err := s.runToExit(ctx, Image(CLI, s.opts.ImageTag), opts)
	if err == nil {
		err = CheckCLIOutput(res.Logs)
	}
	return res, err
}

func (s *Stack) runToExit(ctx context.Context, img string, opts []testcontainers.ContainerCustomizer) (Exit, error) {
	c, err := testcontainers.Run(ctx, img, opts...)
	if c != nil {
		defer func() {
			tctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = c.Terminate(tctx, testcontainers.StopTimeout(time.Second))
		}()
	}
	if err != nil {
		return Exit{}, fmt.Errorf("run %s: %w", img, err)
	}
	st, err := c.State(ctx)
	if err != nil {
		return Exit{}, err
	}
	logs, err := containerLogs(ctx, c)
	if err != nil {
		return Exit{}, err
	}
	return Exit{Code: st.ExitCode, Logs: logs}, nil
}
