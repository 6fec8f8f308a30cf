package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/hashicorp/go-hclog"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/moltbot/moltbot-secure/sandboxd/internal/agentproto"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// DockerConfig configures the Docker backend.
type DockerConfig struct {
	// Client defaults to client.New(client.FromEnv) (DOCKER_HOST etc.).
	Client *client.Client
	Logger hclog.Logger
	// Instance, when set, is stamped on containers as LabelInstance and List
	// only returns containers carrying it (tests use it to stay apart).
	Instance string
	// AgentGrace is how long past a command's timeout the agent may take to
	// answer before the container counts as wedged.
	AgentGrace time.Duration
}

// Docker is the Backend on a Docker Engine (API >= 1.41).
type Docker struct {
	c        *client.Client
	log      hclog.Logger
	instance string
	grace    time.Duration
	ownsC    bool

	mu     sync.Mutex
	agents map[string]*agentConn
	pids   map[string]int64 // last seen pids.events "max" per container (docker-exec path)

	oom    *oomWatch
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ Backend = (*Docker)(nil)

// NewDocker returns a Docker backend and starts its events watcher. It does
// not contact the engine: an unreachable engine shows up in Ping and calls.
func NewDocker(cfg DockerConfig) (*Docker, error) {
	d := &Docker{c: cfg.Client, log: cfg.Logger, instance: cfg.Instance, grace: cfg.AgentGrace,
		agents: map[string]*agentConn{}, pids: map[string]int64{}, oom: newOOMWatch()}
	if d.log == nil {
		d.log = hclog.NewNullLogger()
	}
	if d.grace <= 0 {
		d.grace = 5 * time.Second
	}
	if d.c == nil {
		c, err := client.New(client.FromEnv)
		if err != nil {
			return nil, fmt.Errorf("docker client from environment (DOCKER_HOST=%q): %w", os.Getenv("DOCKER_HOST"), errs.ErrFailedPrecondition)
		}
		d.c, d.ownsC = c, true
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	d.wg.Add(1)
	go func() { defer d.wg.Done(); d.watchEvents(ctx) }()
	return d, nil
}

// Close stops the watcher and drops agent connections (containers keep running).
func (d *Docker) Close() error {
	d.cancel()
	d.wg.Wait()
	d.mu.Lock()
	for id, a := range d.agents {
		a.close()
		delete(d.agents, id)
	}
	d.mu.Unlock()
	if d.ownsC {
		return d.c.Close()
	}
	return nil
}

// wrap classifies engine errors: unreachable -> ErrUnavailable naming the fix.
func (d *Docker) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if client.IsErrConnectionFailed(err) || errors.Is(err, os.ErrNotExist) || strings.Contains(err.Error(), "connect:") {
		return fmt.Errorf("%s: Docker is not reachable at %s (start the Docker engine, or point DOCKER_HOST at it): %v: %w",
			op, d.c.DaemonHost(), err, errs.ErrUnavailable)
	}
	if cerrdefs.IsNotFound(err) {
		return fmt.Errorf("%s: %v: %w", op, err, errs.ErrNotFound)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// Ping implements Backend.
func (d *Docker) Ping(ctx context.Context) (string, error) {
	pr, err := d.c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	if err != nil {
		return "", d.wrap("ping Docker", err)
	}
	return pr.APIVersion, nil
}

// ImagePresent implements Backend.
func (d *Docker) ImagePresent(ctx context.Context, image string) (bool, error) {
	_, err := d.c.ImageInspect(ctx, image)
	if cerrdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, d.wrap("inspect image "+image, err)
	}
	return true, nil
}

// Create implements Backend.
func (d *Docker) Create(ctx context.Context, s Spec) (Container, error) {
	ii, err := d.c.ImageInspect(ctx, s.Image)
	if cerrdefs.IsNotFound(err) {
		return Container{}, fmt.Errorf("sandbox image %q is missing: build it with `make sandbox-image`: %w", s.Image, errs.ErrFailedPrecondition)
	}
	if err != nil {
		return Container{}, d.wrap("inspect image "+s.Image, err)
	}
	agent := ii.Config != nil && ii.Config.Labels[LabelAgentPath] != ""
	cfg, hc, err := Build(s, agent, d.instance)
	if err != nil {
		return Container{}, err
	}
	if err := d.ensureVolumes(ctx, s.Volumes); err != nil {
		return Container{}, err
	}
	labels := cfg.Labels
	cr, err := d.c.ContainerCreate(ctx, client.ContainerCreateOptions{Name: s.Name, Image: s.Image, Config: cfg, HostConfig: hc})
	if err != nil {
		return Container{}, d.wrap("create sandbox container", err)
	}
	id := cr.ID
	fail := func(op string, err error) (Container, error) {
		_, _ = d.c.ContainerRemove(context.WithoutCancel(ctx), id, client.ContainerRemoveOptions{Force: true})
		return Container{}, d.wrap(op, err)
	}
	var conn *agentConn
	if agent {
		// Attach before start so no early output is lost.
		ar, err := d.c.ContainerAttach(ctx, id, client.ContainerAttachOptions{Stream: true, Stdin: true, Stdout: true, Stderr: true})
		if err != nil {
			return fail("attach sandbox container", err)
		}
		conn = newAgentConn(id, ar.HijackedResponse, d.log)
	}
	if _, err := d.c.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		if conn != nil {
			conn.close()
		}
		return fail("start sandbox container", err)
	}
	if conn != nil {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := conn.ping(pctx)
		cancel()
		if err != nil {
			conn.close()
			return fail("sandbox agent did not answer", err)
		}
		d.mu.Lock()
		d.agents[id] = conn
		d.mu.Unlock()
	}
	return Container{ID: id, Name: s.Name, Image: s.Image, State: "running", Running: true, Labels: labels, Agent: agent}, nil
}

// ensureVolumes creates each named volume that is missing, labelled as
// sandboxd's. A volume of that name without the label belongs to someone
// else and is refused, never mounted.
func (d *Docker) ensureVolumes(ctx context.Context, vs []Volume) error {
	for _, v := range vs {
		vi, err := d.c.VolumeInspect(ctx, v.Name, client.VolumeInspectOptions{})
		switch {
		case cerrdefs.IsNotFound(err):
			if _, err := d.c.VolumeCreate(ctx, client.VolumeCreateOptions{Name: v.Name, Labels: VolumeLabels(v, d.instance)}); err != nil {
				return d.wrap("create volume "+v.Name, err)
			}
		case err != nil:
			return d.wrap("inspect volume "+v.Name, err)
		case vi.Volume.Labels[LabelMarker] != "1":
			return fmt.Errorf("volume %s exists but was not created by sandboxd (no %s label); rename or remove it: %w", v.Name, LabelMarker, errs.ErrFailedPrecondition)
		}
	}
	return nil
}

// conn returns a live agent connection, re-attaching after a disconnect.
func (d *Docker) conn(ctx context.Context, id string) (*agentConn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c := d.agents[id]; c != nil && c.err() == nil {
		return c, nil
	} else if c != nil {
		c.close()
		delete(d.agents, id)
	}
	ir, err := d.c.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return nil, fmt.Errorf("container %.12s: %w (%w)", id, ErrContainerGone, ErrNotSent)
		}
		return nil, d.wrap("inspect sandbox container", err)
	}
	if ir.Container.State == nil || !ir.Container.State.Running {
		return nil, fmt.Errorf("container %.12s is not running: %w (%w)", id, ErrContainerGone, ErrNotSent)
	}
	if ir.Container.Config == nil || ir.Container.Config.Labels[LabelAgentPath] == "" || !ir.Container.Config.OpenStdin {
		return nil, nil
	}
	ar, err := d.c.ContainerAttach(ctx, id, client.ContainerAttachOptions{Stream: true, Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		return nil, d.wrap("attach sandbox container", err)
	}
	c := newAgentConn(id, ar.HijackedResponse, d.log)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.ping(pctx); err != nil {
		c.close()
		return nil, fmt.Errorf("container %.12s: agent did not answer after re-attach (%v): %w (%w)", id, err, ErrContainerGone, ErrNotSent)
	}
	d.agents[id] = c
	return c, nil
}

// Exec implements Backend.
func (d *Docker) Exec(ctx context.Context, id string, s ExecSpec) (ExecResult, error) {
	if s.Timeout <= 0 || s.OutputCap <= 0 || s.OutputCap > agentproto.MaxOutputCap || len(s.Argv) == 0 {
		return ExecResult{}, fmt.Errorf("exec spec needs argv, a timeout and an output cap in 1..%d: %w", agentproto.MaxOutputCap, errs.ErrInvalidArgument)
	}
	if !s.ForceDockerExec {
		c, err := d.conn(ctx, id)
		if err != nil {
			return ExecResult{}, err
		}
		if c != nil {
			return d.execAgent(ctx, c, s)
		}
	}
	res, err := d.execDocker(ctx, id, s)
	if err == nil && s.Measure != "" {
		res.Usage, res.UsageErr = d.DiskUsage(ctx, id, s.Measure)
	}
	return res, err
}

func (d *Docker) execAgent(ctx context.Context, c *agentConn, s ExecSpec) (ExecResult, error) {
	start := time.Now()
	wait := s.Timeout + d.grace
	if s.Measure != "" {
		wait += measureTimeout
	}
	resp, err := c.call(ctx, &agentproto.Exec{Argv: s.Argv, Stdin: s.Stdin, Timeout: s.Timeout, OutputCap: uint32(s.OutputCap), Measure: s.Measure}, wait)
	if err != nil {
		return ExecResult{}, err
	}
	if resp.Kind == agentproto.KindError {
		if strings.HasPrefix(resp.Message, agentproto.ErrProtocol.Error()) {
			// The agent could not read the request, so it ran nothing: an
			// agent of another version (a container from before an
			// upgrade). Replace the container and run it there.
			c.fail(fmt.Errorf("agent could not read the request: %q", resp.Message))
			return ExecResult{}, fmt.Errorf("container %.12s: its agent speaks another protocol version (%q): %w (%w)", c.id, resp.Message, ErrContainerGone, ErrNotSent)
		}
		return ExecResult{}, fmt.Errorf("sandbox agent refused the command: %s: %w", resp.Message, errs.ErrFailedPrecondition)
	}
	r := resp.Result
	if len(r.Stdout) > s.OutputCap || len(r.Stderr) > s.OutputCap {
		// Only a tampered agent sends more than asked; stop trusting it.
		c.fail(fmt.Errorf("agent reply exceeds the output cap: %w", agentproto.ErrProtocol))
		return ExecResult{}, fmt.Errorf("container %.12s sent an oversized reply: %w", c.id, ErrContainerGone)
	}
	res := ExecResult{ExitCode: int(r.ExitCode), Stdout: r.Stdout, Stderr: r.Stderr, Path: PathAgent,
		Truncated: r.Flags&agentproto.FlagTruncated != 0, Duration: time.Since(start)}
	switch {
	case s.Measure == "":
	case r.UsageErr != "":
		res.UsageErr = measureError(r.UsageErr)
	case r.Usage < 0:
		res.UsageErr = measureError("the agent returned no measurement")
	default:
		res.Usage = r.Usage
	}
	switch {
	case r.Flags&agentproto.FlagTimedOut != 0:
		res.Cause = CauseTimeout
	case r.Flags&agentproto.FlagOOM != 0:
		res.Cause = CauseOOM
	case r.Flags&agentproto.FlagPidsLimit != 0:
		res.Cause = CausePidsLimit
	case r.Flags&agentproto.FlagSignaled != 0 && !res.Truncated:
		res.Cause = CauseSignal
		if r.Signal == 9 && d.oom.wait(c.id, start, 200*time.Millisecond) {
			res.Cause = CauseOOM
		}
	}
	return res, nil
}

// capWriter keeps up to max bytes and then fails, which stops stdcopy.
type capWriter struct {
	buf       []byte
	max       int
	truncated *bool
}

var errCap = errors.New("output cap reached")

func (w *capWriter) Write(p []byte) (int, error) {
	room := w.max - len(w.buf)
	if len(p) > room {
		w.buf = append(w.buf, p[:room]...)
		*w.truncated = true
		return room, errCap
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}

// execDocker is the fallback for images without the agent: one Docker exec
// per command (tens of ms each). The timeout runs inside through timeout(1).
func (d *Docker) execDocker(ctx context.Context, id string, s ExecSpec) (ExecResult, error) {
	start := time.Now()
	secs := strconv.FormatFloat(math.Ceil(s.Timeout.Seconds()*1000)/1000, 'f', 3, 64)
	argv := append([]string{"timeout", "-s", "KILL", secs}, s.Argv...)
	// User stays empty: the exec runs as the container's fixed uid:gid.
	ec, err := d.c.ExecCreate(ctx, id, client.ExecCreateOptions{Cmd: argv, AttachStdin: len(s.Stdin) > 0, AttachStdout: true, AttachStderr: true})
	if err != nil {
		if cerrdefs.IsNotFound(err) || cerrdefs.IsConflict(err) {
			return ExecResult{}, fmt.Errorf("container %.12s: %v: %w (%w)", id, err, ErrContainerGone, ErrNotSent)
		}
		return ExecResult{}, d.wrap("docker exec create", err)
	}
	ar, err := d.c.ExecAttach(ctx, ec.ID, client.ExecAttachOptions{})
	if err != nil {
		return ExecResult{}, d.wrap("docker exec attach", err)
	}
	if len(s.Stdin) > 0 {
		go func() {
			_, _ = ar.Conn.Write(s.Stdin)
			_ = ar.CloseWrite()
		}()
	}
	truncated := false
	stdout := &capWriter{max: s.OutputCap, truncated: &truncated}
	stderr := &capWriter{max: s.OutputCap, truncated: &truncated}
	copied := make(chan error, 1)
	go func() { _, err := stdcopy.StdCopy(stdout, stderr, ar.Reader); copied <- err }()
	hard := time.NewTimer(s.Timeout + d.grace)
	defer hard.Stop()
	select {
	case <-copied:
	case <-hard.C:
	case <-ctx.Done():
	}
	ar.Close()
	res := ExecResult{Path: PathDockerExec, Truncated: truncated}
	ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	for {
		ir, err := d.c.ExecInspect(ictx, ec.ID, client.ExecInspectOptions{})
		if err != nil {
			return ExecResult{}, d.wrap("docker exec inspect", err)
		}
		if !ir.Running {
			res.ExitCode = ir.ExitCode
			break
		}
		select {
		case <-ictx.Done():
			return ExecResult{}, fmt.Errorf("container %.12s: command still running after its timeout: %w", id, ErrContainerGone)
		case <-time.After(2 * time.Millisecond):
		}
	}
	res.Stdout, res.Stderr = stdout.buf, stderr.buf
	res.Duration = time.Since(start)
	switch {
	case res.ExitCode == 137 && res.Duration >= s.Timeout:
		res.Cause = CauseTimeout
	case res.ExitCode == 137 && d.oom.wait(id, start, 200*time.Millisecond):
		res.Cause = CauseOOM
	case res.ExitCode != 0 && d.pidsLimitHit(ictx, id):
		res.Cause = CausePidsLimit
	case res.ExitCode > 128 && !res.Truncated:
		res.Cause = CauseSignal
	}
	return res, nil
}

// pidsLimitHit reads the container's pids.events through one more exec and
// reports whether the "max" counter rose since the last look.
func (d *Docker) pidsLimitHit(ctx context.Context, id string) bool {
	ec, err := d.c.ExecCreate(ctx, id, client.ExecCreateOptions{Cmd: []string{"cat", "/sys/fs/cgroup/pids/pids.events"}, AttachStdout: true})
	if err != nil {
		return false
	}
	ar, err := d.c.ExecAttach(ctx, ec.ID, client.ExecAttachOptions{})
	if err != nil {
		return false
	}
	out := &capWriter{max: 4096, truncated: new(bool)}
	_, _ = stdcopy.StdCopy(out, io.Discard, ar.Reader)
	ar.Close()
	f := strings.Fields(string(out.buf))
	if len(f) != 2 || f[0] != "max" {
		return false
	}
	n, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	hit := n > d.pids[id]
	d.pids[id] = n
	return hit
}

func toContainer(id, name, image, state string, labels map[string]string) Container {
	return Container{ID: id, Name: strings.TrimPrefix(name, "/"), Image: image, State: state,
		Running: state == string(container.StateRunning), Labels: labels, Agent: labels[LabelAgentPath] != ""}
}

// List implements Backend.
func (d *Docker) List(ctx context.Context) ([]Container, error) {
	f := client.Filters{}.Add("label", LabelMarker+"=1")
	if d.instance != "" {
		f.Add("label", LabelInstance+"="+d.instance)
	}
	lr, err := d.c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, d.wrap("list sandbox containers", err)
	}
	out := make([]Container, 0, len(lr.Items))
	for _, s := range lr.Items {
		name := ""
		if len(s.Names) > 0 {
			name = s.Names[0]
		}
		out = append(out, toContainer(s.ID, name, s.Image, string(s.State), s.Labels))
	}
	return out, nil
}

// Inspect implements Backend.
func (d *Docker) Inspect(ctx context.Context, id string) (Container, error) {
	ir, err := d.c.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return Container{}, d.wrap("inspect sandbox container", err)
	}
	c := ir.Container
	state := ""
	if c.State != nil {
		state = string(c.State.Status)
	}
	var labels map[string]string
	image := c.Image
	if c.Config != nil {
		labels = c.Config.Labels
		image = c.Config.Image
	}
	return toContainer(c.ID, c.Name, image, state, labels), nil
}

// Rename implements Backend.
func (d *Docker) Rename(ctx context.Context, id, name string) error {
	_, err := d.c.ContainerRename(ctx, id, client.ContainerRenameOptions{NewName: name})
	return d.wrap("rename sandbox container", err)
}

// Remove implements Backend.
func (d *Docker) Remove(ctx context.Context, id string) error {
	d.mu.Lock()
	if c := d.agents[id]; c != nil {
		c.close()
		delete(d.agents, id)
	}
	delete(d.pids, id)
	d.mu.Unlock()
	d.oom.forget(id)
	_, err := d.c.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return d.wrap("remove sandbox container", err)
	}
	return nil
}

// watchEvents records OOM events of sandbox containers: an OOM-killed exec
// shows only as exit 137 plus a container "oom" event (State.OOMKilled stays
// false), so this is how such kills are told apart from plain SIGKILL.
func (d *Docker) watchEvents(ctx context.Context) {
	for ctx.Err() == nil {
		f := client.Filters{}.Add("type", "container").Add("event", "oom").Add("label", LabelMarker+"=1")
		er := d.c.Events(ctx, client.EventsListOptions{Filters: f})
	loop:
		for {
			select {
			case <-ctx.Done():
				return
			case m := <-er.Messages:
				d.oom.record(m.Actor.ID, time.Unix(0, m.TimeNano))
			case err := <-er.Err:
				if ctx.Err() == nil {
					d.log.Debug("docker events stream ended; retrying", "error", err)
				}
				break loop
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

type oomWatch struct {
	mu     sync.Mutex
	events map[string][]time.Time
	notify chan struct{}
}

func newOOMWatch() *oomWatch {
	return &oomWatch{events: map[string][]time.Time{}, notify: make(chan struct{})}
}

func (o *oomWatch) record(id string, at time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	ev := append(o.events[id], at)
	if len(ev) > 16 {
		ev = ev[len(ev)-16:]
	}
	o.events[id] = ev
	close(o.notify)
	o.notify = make(chan struct{})
}

func (o *oomWatch) forget(id string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.events, id)
}

// wait reports whether an OOM of container id happened after since, waiting
// up to d for the event to arrive.
func (o *oomWatch) wait(id string, since time.Time, d time.Duration) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		o.mu.Lock()
		for _, t := range o.events[id] {
			if !t.Before(since.Add(-50 * time.Millisecond)) {
				o.mu.Unlock()
				return true
			}
		}
		ch := o.notify
		o.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			return false
		}
	}
}

// measureTimeout bounds one measurement (the agent's walk, or du).
const measureTimeout = 30 * time.Second

// DiskUsage implements Backend. The measurement runs inside the container
// as its non-root user, so sandboxd never opens a path of the volume itself
// and a planted symlink cannot point it anywhere: the agent walks the tree
// in-process (one round trip, no process started); an image without the
// agent runs du -skx through docker exec.
func (d *Docker) DiskUsage(ctx context.Context, id, path string) (int64, error) {
	c, err := d.conn(ctx, id)
	if err != nil {
		return 0, err
	}
	if c != nil {
		return c.usage(ctx, path, measureTimeout+d.grace)
	}
	return d.du(ctx, id, path)
}

func (d *Docker) du(ctx context.Context, id, path string) (int64, error) {
	r, err := d.execDocker(ctx, id, ExecSpec{Argv: []string{"du", "-s", "-k", "-x", path}, Timeout: measureTimeout, OutputCap: 4096})
	if err != nil {
		return 0, err
	}
	return ParseDu(r)
}

// ParseDu reads `du -sk` output. A non-zero exit (an unreadable directory,
// a timeout) is an error: a workspace that cannot be measured is not
// assumed small.
func ParseDu(r ExecResult) (int64, error) {
	if r.ExitCode != 0 || r.Cause != CauseNone {
		msg := strings.TrimSpace(string(r.Stderr))
		if i := strings.IndexByte(msg, '\n'); i > 0 {
			msg = msg[:i]
		}
		return 0, fmt.Errorf("workspace could not be measured (du exit %d, %s: %q): %w", r.ExitCode, r.Cause, msg, errs.ErrFailedPrecondition)
	}
	f := strings.Fields(string(r.Stdout))
	if len(f) < 2 {
		return 0, fmt.Errorf("workspace could not be measured: du printed %q: %w", r.Stdout, errs.ErrFailedPrecondition)
	}
	kb, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil || kb < 0 {
		return 0, fmt.Errorf("workspace could not be measured: du printed %q: %w", r.Stdout, errs.ErrFailedPrecondition)
	}
	return kb * 1024, nil
}

// ListVolumes implements Backend.
func (d *Docker) ListVolumes(ctx context.Context) ([]VolumeInfo, error) {
	f := client.Filters{}.Add("label", LabelMarker+"=1")
	if d.instance != "" {
		f.Add("label", LabelInstance+"="+d.instance)
	}
	vl, err := d.c.VolumeList(ctx, client.VolumeListOptions{Filters: f})
	if err != nil {
		return nil, d.wrap("list sandbox volumes", err)
	}
	out := make([]VolumeInfo, 0, len(vl.Items))
	for _, v := range vl.Items {
		out = append(out, VolumeInfo{Name: v.Name, Labels: v.Labels})
	}
	return out, nil
}

// RemoveVolume implements Backend. The engine deletes the volume's
// directory without following symlinks in it.
func (d *Docker) RemoveVolume(ctx context.Context, name string) error {
	vi, err := d.c.VolumeInspect(ctx, name, client.VolumeInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return d.wrap("inspect volume "+name, err)
	}
	if vi.Volume.Labels[LabelMarker] != "1" || (d.instance != "" && vi.Volume.Labels[LabelInstance] != d.instance) {
		return fmt.Errorf("volume %s is not this sandboxd's (labels); not removed: %w", name, errs.ErrPermissionDenied)
	}
	_, err = d.c.VolumeRemove(ctx, name, client.VolumeRemoveOptions{})
	switch {
	case err == nil, cerrdefs.IsNotFound(err):
		return nil
	case cerrdefs.IsConflict(err):
		return fmt.Errorf("volume %s is still in use by a container: %v: %w", name, err, errs.ErrFailedPrecondition)
	}
	return d.wrap("remove volume "+name, err)
}
