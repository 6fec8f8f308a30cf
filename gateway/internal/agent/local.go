package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Local runs main-session commands in the gateway's own process space
// (mode non-main: the owner's main DM session is trusted like a shell on the
// host). The command gets a clean environment, never the gateway's (which
// holds the gateway token), its own process group, a timeout that kills the
// whole group, and an output cap.
type Local struct {
	// Shell is the shell argv prefix; empty means the first of /bin/sh and
	// /bin/busybox sh that exists, and with neither (a FROM scratch image
	// without busybox) the command line is split on spaces and run directly.
	Shell []string
	// Dir is the working directory; empty means the system temp dir when
	// it exists, else /.
	Dir string
	// Env is the environment; nil means PATH and HOME only.
	Env []string

	once sync.Once
	sh   []string
}

func (l *Local) shell() []string {
	l.once.Do(func() {
		switch {
		case len(l.Shell) > 0:
			l.sh = l.Shell
		case isExec("/bin/sh"):
			l.sh = []string{"/bin/sh", "-c"}
		case isExec("/bin/busybox"):
			l.sh = []string{"/bin/busybox", "sh", "-c"}
		}
	})
	return l.sh
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// Run runs command with timeout and output cap (bytes, stdout and stderr each).
func (l *Local) Run(ctx context.Context, command string, timeout time.Duration, outCap int) (ExecResult, error) {
	var argv []string
	if sh := l.shell(); len(sh) > 0 {
		argv = append(append([]string{}, sh...), command)
	} else {
		argv = strings.Fields(command)
	}
	if len(argv) == 0 {
		return ExecResult{}, errors.New("empty command")
	}
	dir := l.Dir
	if dir == "" {
		dir = "/"
		if fi, err := os.Stat(os.TempDir()); err == nil && fi.IsDir() {
			dir = os.TempDir()
		}
	}
	env := l.Env
	if env == nil {
		env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + dir}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir, cmd.Env = dir, env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A background child keeping stdout open must not hold the reply until
	// the timeout: stop reading shortly after the shell itself exits.
	cmd.WaitDelay = 500 * time.Millisecond
	stdout, stderr := &capBuffer{max: outCap}, &capBuffer{max: outCap}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		return ExecResult{}, fmt.Errorf("start %q: %w", argv[0], err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var cause string
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var werr error
	select {
	case werr = <-done:
	case <-timer.C:
		cause = "timeout"
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		werr = <-done
	case <-ctx.Done():
		cause = "signal"
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		werr = <-done
	}
	// Children that outlived the shell still share its group.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	res := ExecResult{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), Truncated: stdout.cut || stderr.cut, Cause: cause}
	var ee *exec.ExitError
	switch {
	case werr == nil, errors.Is(werr, exec.ErrWaitDelay):
	case errors.As(werr, &ee):
		res.ExitCode = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			res.ExitCode = 128 + int(ws.Signal())
			if cause == "" {
				res.Cause = "signal"
			}
		}
	default:
		return res, fmt.Errorf("wait for %q: %w", argv[0], werr)
	}
	return res, nil
}

// capBuffer keeps the first max bytes and notes that more were written.
type capBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
	cut bool
}

func (c *capBuffer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := c.max - c.buf.Len(); room < len(p) {
		c.cut = true
		if room > 0 {
			c.buf.Write(p[:room])
		}
		return len(p), nil
	}
	c.buf.Write(p)
	return len(p), nil
}

func (c *capBuffer) Bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.buf.Bytes()...)
}
