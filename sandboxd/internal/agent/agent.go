// Package agent is the exec agent that runs as PID 1 of each sandbox. It reads
// framed requests (package agentproto) from stdin, forks each command in its
// own process group, enforces the timeout and output cap, and writes one reply
// frame per request to stdout. It also reaps orphans, as PID 1 must.
package agent

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/moltbot/moltbot-secure/sandboxd/internal/agentproto"
)

// Config holds the agent's dependencies.
type Config struct {
	In  io.Reader
	Out io.Writer
	// Log receives diagnostics (stderr of PID 1); never the commands' output.
	Log io.Writer
	// Sweep kills every process but PID 1 after a timed-out request. Only
	// safe when the agent is PID 1 of its own PID namespace.
	Sweep bool
	// CgroupRoot is where the container's cgroup v1 controllers are mounted.
	CgroupRoot string
	// MaxInFlight bounds concurrent requests; each costs goroutines and fds.
	MaxInFlight int
	// Drain is how long output is still read after the command exits, for
	// background children that keep the pipes open.
	Drain time.Duration
	// MeasureTimeout bounds one disk-usage walk.
	MeasureTimeout time.Duration
}

// Agent serves requests until its input ends.
type Agent struct {
	cfg     Config
	writeMu sync.Mutex
	out     *bufio.Writer
	reaper  *reaper
	sem     chan struct{}

	mu     sync.Mutex
	active map[int]bool // process group ids of running requests

	pathMu sync.Mutex
	paths  map[string]string // command name -> path, when it cannot change

	oom, pids *counter
	devNull   *os.File // stdin of commands given none; nil if it cannot be opened
}

// New returns an agent; call Run to serve.
func New(cfg Config) *Agent {
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 32
	}
	if cfg.Drain <= 0 {
		cfg.Drain = 100 * time.Millisecond
	}
	if cfg.MeasureTimeout <= 0 {
		cfg.MeasureTimeout = 30 * time.Second
	}
	if cfg.CgroupRoot == "" {
		cfg.CgroupRoot = "/sys/fs/cgroup"
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	devNull, _ := os.Open(os.DevNull)
	return &Agent{
		devNull: devNull,
		cfg:     cfg,
		out:     bufio.NewWriterSize(cfg.Out, 64<<10),
		reaper:  newReaper(),
		sem:     make(chan struct{}, cfg.MaxInFlight),
		active:  map[int]bool{},
		paths:   map[string]string{},
		oom:     newCounter(filepath.Join(cfg.CgroupRoot, "memory", "memory.oom_control"), "oom_kill"),
		pids:    newCounter(filepath.Join(cfg.CgroupRoot, "pids", "pids.events"), "max"),
	}
}

// Run reads requests until In ends (io.EOF returns nil).
func (a *Agent) Run() error {
	stop := a.reaper.run()
	defer stop()
	in := bufio.NewReaderSize(a.cfg.In, 64<<10)
	for {
		p, err := agentproto.ReadFrame(in, agentproto.MaxRequestFrame)
		if errors.Is(err, io.EOF) {
			// Finish what was asked before exiting (the container ends with us).
			for range cap(a.sem) {
				a.sem <- struct{}{}
			}
			return nil
		}
		if err != nil {
			// A broken frame means the stream is out of sync; nothing after it
			// can be trusted to start at a frame boundary.
			return fmt.Errorf("read request: %w", err)
		}
		req, err := agentproto.DecodeRequest(p)
		if err != nil {
			id := uint64(0)
			if len(p) >= 9 {
				id = uint64(p[1])<<56 | uint64(p[2])<<48 | uint64(p[3])<<40 | uint64(p[4])<<32 |
					uint64(p[5])<<24 | uint64(p[6])<<16 | uint64(p[7])<<8 | uint64(p[8])
			}
			a.reply(agentproto.Response{Kind: agentproto.KindError, ID: id, Message: err.Error()})
			continue
		}
		switch req.Kind {
		case agentproto.KindPing:
			a.reply(agentproto.Response{Kind: agentproto.KindPong, ID: req.ID})
		case agentproto.KindExec, agentproto.KindUsage:
			select {
			case a.sem <- struct{}{}:
			default:
				a.reply(agentproto.Response{Kind: agentproto.KindError, ID: req.ID, Message: "agent busy: too many requests in flight"})
				continue
			}
			go func() {
				defer func() { <-a.sem }()
				if req.Kind == agentproto.KindUsage {
					u, err := a.measure(req.Path)
					if err != nil {
						a.reply(agentproto.Response{Kind: agentproto.KindError, ID: req.ID, Message: err.Error()})
						return
					}
					a.reply(agentproto.Response{Kind: agentproto.KindSize, ID: req.ID, Usage: u})
					return
				}
				res := a.exec(req.Exec)
				res.Usage = -1
				if req.Exec.Measure != "" {
					u, err := a.measure(req.Exec.Measure)
					if err != nil {
						res.UsageErr = err.Error()
					} else {
						res.Usage = u
					}
				}
				a.reply(agentproto.Response{Kind: agentproto.KindResult, ID: req.ID, Result: res})
			}()
		}
	}
}

// measure is DiskUsage under the configured time bound.
func (a *Agent) measure(path string) (int64, error) {
	return DiskUsage(path, time.Now().Add(a.cfg.MeasureTimeout))
}

func (a *Agent) reply(resp agentproto.Response) {
	p, err := agentproto.EncodeResponse(resp)
	if err != nil {
		fmt.Fprintf(a.cfg.Log, "agent: encode reply %d: %v\n", resp.ID, err)
		p, _ = agentproto.EncodeResponse(agentproto.Response{Kind: agentproto.KindError, ID: resp.ID, Message: "agent: reply not encodable"})
	}
	a.writeMu.Lock()
	defer a.writeMu.Unlock()
	_, err = a.out.Write(agentproto.AppendFrame(nil, p))
	if err == nil {
		err = a.out.Flush()
	}
	if err != nil {
		fmt.Fprintf(a.cfg.Log, "agent: write reply %d: %v\n", resp.ID, err)
	}
}

// capBuffer keeps the first max bytes written and reports overflow once.
type capBuffer struct {
	buf      []byte
	max      int
	overflow func()
	over     bool
}

func (c *capBuffer) Write(p []byte) (int, error) {
	room := c.max - len(c.buf)
	if len(p) > room {
		c.buf = append(c.buf, p[:max(room, 0)]...)
		if !c.over {
			c.over = true
			c.overflow()
		}
		return len(p), nil
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
}

func (a *Agent) exec(e *agentproto.Exec) *agentproto.Result {
	start := time.Now()
	res := &agentproto.Result{}
	fail := func(code int32, flags uint8, msg string) *agentproto.Result {
		res.ExitCode = code
		res.Flags |= agentproto.FlagStartFailed | flags
		res.Stderr = []byte(msg)
		if len(res.Stderr) > int(e.OutputCap) {
			res.Stderr = res.Stderr[:e.OutputCap]
		}
		res.Duration = time.Since(start)
		return res
	}
	path, err := a.lookPath(e.Argv[0])
	if err != nil {
		return fail(127, 0, fmt.Sprintf("agent: %s: %v\n", e.Argv[0], err))
	}
	// Without input the command reads /dev/null: no pipe, no writer.
	inR, inW := a.devNull, (*os.File)(nil)
	if len(e.Stdin) > 0 || inR == nil {
		var err error
		if inR, inW, err = os.Pipe(); err != nil {
			return fail(126, 0, fmt.Sprintf("agent: pipe: %v\n", err))
		}
	}
	closeIn := func() {
		if inR != a.devNull {
			closeAll(inR)
		}
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		closeIn()
		closeAll(inW)
		return fail(126, 0, fmt.Sprintf("agent: pipe: %v\n", err))
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		closeIn()
		closeAll(inW, outR, outW)
		return fail(126, 0, fmt.Sprintf("agent: pipe: %v\n", err))
	}
	// Fd() puts the child's ends back in blocking mode; a non-blocking stdout
	// would make ordinary programs fail with EAGAIN.
	files := []uintptr{inR.Fd(), outW.Fd(), errW.Fd()}
	pid, done, err := a.reaper.start(path, e.Argv, &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: files,
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	closeIn()
	closeAll(outW, errW)
	if err != nil {
		closeAll(inW, outR, errR)
		var flags uint8
		code := int32(126)
		if errors.Is(err, syscall.EAGAIN) {
			flags |= agentproto.FlagPidsLimit
		}
		if errors.Is(err, syscall.ENOENT) {
			code = 127
		}
		return fail(code, flags, fmt.Sprintf("agent: start %s: %v\n", e.Argv[0], err))
	}
	a.mu.Lock()
	a.active[pid] = true
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.active, pid)
		a.mu.Unlock()
	}()

	if inW != nil {
		go func() {
			_, _ = inW.Write(e.Stdin)
			_ = inW.Close()
		}()
	}

	var truncated atomic.Bool
	killGroup := func() { _ = syscall.Kill(-pid, syscall.SIGKILL) }
	onOverflow := func() {
		if truncated.CompareAndSwap(false, true) {
			// Stop a runaway writer instead of draining it until the timeout.
			killGroup()
		}
	}
	stdout := &capBuffer{max: int(e.OutputCap), overflow: onOverflow}
	stderr := &capBuffer{max: int(e.OutputCap), overflow: onOverflow}
	var wg sync.WaitGroup
	var outMu sync.Mutex // capBuffers share onOverflow state
	copyTo := func(dst *capBuffer, src *os.File) {
		defer wg.Done()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				outMu.Lock()
				_, _ = dst.Write(buf[:n])
				outMu.Unlock()
			}
			if err != nil {
				return
			}
		}
	}
	wg.Add(2)
	go copyTo(stdout, outR)
	go copyTo(stderr, errR)

	timer := time.NewTimer(e.Timeout)
	defer timer.Stop()
	var ws syscall.WaitStatus
	timedOut := false
	select {
	case ws = <-done:
	case <-timer.C:
		timedOut = true
		killGroup()
		ws = <-done
	}
	closeAll(inW) // unblocks a stdin writer the command never read
	if timedOut || truncated.Load() {
		// setsid escapes the group kill; sweep whatever is left.
		a.sweep(pid)
	}
	// Background children may hold the pipes open; read a little longer, then stop.
	deadline := time.Now().Add(a.cfg.Drain)
	_ = outR.SetReadDeadline(deadline)
	_ = errR.SetReadDeadline(deadline)
	wg.Wait()
	closeAll(outR, errR)

	res.Stdout = stdout.buf
	res.Stderr = stderr.buf
	switch {
	case ws.Exited():
		res.ExitCode = int32(ws.ExitStatus())
	case ws.Signaled():
		res.Signal = uint8(ws.Signal())
		res.ExitCode = 128 + int32(ws.Signal())
		res.Flags |= agentproto.FlagSignaled
	}
	if truncated.Load() {
		res.Flags |= agentproto.FlagTruncated
	}
	if timedOut {
		res.Flags |= agentproto.FlagTimedOut
	}
	// The cgroup counters are compared with their last reading, not one
	// taken before this command: one file read per command instead of
	// four. A rise means the container hit its limit since the last look,
	// which is what sandboxd acts on (a pids-limited container is
	// replaced). The OOM counter matters only for a command SIGKILLed by
	// no one else.
	if ws.Signaled() && ws.Signal() == syscall.SIGKILL && !timedOut && !truncated.Load() && a.oom.rose() {
		res.Flags |= agentproto.FlagOOM
	}
	if a.pids.rose() {
		res.Flags |= agentproto.FlagPidsLimit
	}
	res.Duration = time.Since(start)
	return res
}

// sweep kills what a finished request left behind. With no other request
// running that is everything but PID 1 (kill(-1)); otherwise every process
// outside the other requests' process groups.
func (a *Agent) sweep(pgid int) {
	if !a.cfg.Sweep {
		return
	}
	a.mu.Lock()
	others := map[int]bool{}
	for g := range a.active {
		if g != pgid {
			others[g] = true
		}
	}
	a.mu.Unlock()
	if len(others) == 0 {
		_ = syscall.Kill(-1, syscall.SIGKILL)
		return
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	for _, ent := range ents {
		p, err := strconv.Atoi(ent.Name())
		if err != nil || p == 1 {
			continue
		}
		if g, err := syscall.Getpgid(p); err == nil && !others[g] {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
	}
}

func closeAll(fs ...*os.File) {
	for _, f := range fs {
		_ = f.Close()
	}
}

// lookPath resolves argv[0] like a shell, against the agent's PATH.
func (a *Agent) lookPath(name string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	a.pathMu.Lock()
	p, ok := a.paths[name]
	a.pathMu.Unlock()
	if ok {
		return p, nil
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", errors.New("command not found")
	}
	if a.cacheable(p) {
		a.pathMu.Lock()
		if len(a.paths) < 1024 {
			a.paths[name] = p
		}
		a.pathMu.Unlock()
	}
	return p, nil
}

// cacheable reports whether the resolution of a command to path can never
// change: no directory searched up to path's can gain an entry (each is
// unwritable, as the read-only root filesystem of a sandbox is) and path
// itself cannot be replaced. A writable directory on PATH is searched
// every time, so a file created there still shadows later ones.
func (a *Agent) cacheable(path string) bool {
	dir := filepath.Dir(path)
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		// Only a read-only filesystem's EROFS proves no entry can appear:
		// success is writable, and EACCES depends on who asks.
		if d == "" || !errors.Is(unix.Access(d, unix.W_OK), unix.EROFS) {
			return false
		}
		if d == dir {
			return true
		}
	}
	return false
}

// counter is a cgroup event counter and its last reading.
type counter struct {
	path, key string
	mu        sync.Mutex
	last      int64
}

func newCounter(path, key string) *counter {
	return &counter{path: path, key: key, last: readCounter(path, key)}
}

// rose reads the counter and reports whether it grew since the last read.
func (c *counter) rose() bool {
	v := readCounter(c.path, c.key)
	c.mu.Lock()
	defer c.mu.Unlock()
	if v < 0 {
		return false
	}
	up := c.last >= 0 && v > c.last
	c.last = v
	return up
}

// readCounter returns the value of "key N" in a cgroup file, or -1.
func readCounter(path, key string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == key {
			n, err := strconv.ParseInt(f[1], 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}

// reaper owns wait4 for every child: it hands our commands' statuses to
// their waiters and silently reaps orphans re-parented to PID 1. One owner
// means no exit status is ever stolen.
type reaper struct {
	mu      sync.Mutex
	waiters map[int]chan syscall.WaitStatus
	kick    chan os.Signal
}

func newReaper() *reaper {
	return &reaper{waiters: map[int]chan syscall.WaitStatus{}, kick: make(chan os.Signal, 1)}
}

func (r *reaper) run() (stop func()) {
	signal.Notify(r.kick, syscall.SIGCHLD)
	quit := make(chan struct{})
	go func() {
		// A periodic pass as well: SIGCHLDs coalesce.
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-r.kick:
			case <-t.C:
			}
			r.reapAll()
		}
	}()
	return func() { signal.Stop(r.kick); close(quit) }
}

func (r *reaper) start(path string, argv []string, attr *syscall.ProcAttr) (int, <-chan syscall.WaitStatus, error) {
	ch := make(chan syscall.WaitStatus, 1)
	// Hold the lock across fork so a fast exit is not reaped before we listen.
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, err := syscall.ForkExec(path, argv, attr)
	if err != nil {
		return 0, nil, err
	}
	r.waiters[pid] = ch
	return pid, ch, nil
}

func (r *reaper) reapAll() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		r.mu.Lock()
		ch := r.waiters[pid]
		delete(r.waiters, pid)
		r.mu.Unlock()
		if ch != nil {
			ch <- ws
		}
	}
}
