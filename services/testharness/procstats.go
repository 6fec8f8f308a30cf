//go:build linux

package testharness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// HostPid is the host process id of svc's container (Docker's State.Pid),
// so a test running as root can read its /proc entry: scratch images have
// no shell to look from inside.
func (s *Stack) HostPid(ctx context.Context, svc string) (int, error) {
	c := s.Container(svc)
	if c == nil {
		return 0, fmt.Errorf("%s: %w", svc, ErrNotStarted)
	}
	in, err := c.Inspect(ctx)
	if err != nil {
		return 0, fmt.Errorf("inspect %s: %w", svc, err)
	}
	if in.State == nil || in.State.Pid == 0 {
		return 0, fmt.Errorf("%s is not running", svc)
	}
	return in.State.Pid, nil
}

// ProcStats reads a process's open file descriptors and resident memory
// from /proc (for leak checks on a daemon: a local one's Pid, or a
// container's host pid from Docker's State.Pid).
func ProcStats(pid int) (fds int, rssKiB int, err error) {
	ents, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
	if err != nil {
		return 0, 0, fmt.Errorf("fds of pid %d: %w", pid, err)
	}
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, 0, fmt.Errorf("status of pid %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			rssKiB, err = strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				return 0, 0, fmt.Errorf("VmRSS of pid %d: %q", pid, v)
			}
		}
	}
	return len(ents), rssKiB, nil
}
