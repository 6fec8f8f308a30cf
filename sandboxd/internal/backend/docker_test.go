//go:build integration

package backend

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/services/errs"
)

const (
	testImage        = "moltbot-sandbox-test:latest"
	testImageNoAgent = "moltbot-sandbox-test-noagent:latest"
)

var dockerSkip string

// TestMain builds the busybox test image with the repo's script (so the agent
// in it is the one in this tree) plus a variant without the agent.
func TestMain(m *testing.M) {
	if out, err := exec.Command("docker", "version").CombinedOutput(); err != nil {
		dockerSkip = fmt.Sprintf("Docker is not reachable (%v: %s); start the engine to run the sandbox integration tests", err, strings.TrimSpace(string(out)))
		os.Exit(m.Run())
	}
	_, file, _, _ := runtime.Caller(0)
	repo := filepath.Join(filepath.Dir(file), "..", "..", "..")
	cmd := exec.Command("bash", filepath.Join(repo, "deploy", "sandbox", "build-testimage.sh"))
	cmd.Env = append(os.Environ(), "FORCE=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build test image: %v\n%s", err, out)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "noagent")
	if err == nil {
		_ = os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM "+testImage+"\nLABEL moltbot.sandbox.agent=\"\"\nENTRYPOINT []\n"), 0o600)
		out, err := exec.Command("docker", "build", "-q", "-t", testImageNoAgent, dir).CombinedOutput()
		_ = os.RemoveAll(dir)
		if err != nil {
			fmt.Fprintf(os.Stderr, "build no-agent image: %v\n%s", err, out)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}

func newTestDocker(t *testing.T) *Docker {
	t.Helper()
	if dockerSkip != "" {
		t.Skip(dockerSkip)
	}
	d, err := NewDocker(DockerConfig{Instance: fmt.Sprintf("backend-test-%d", os.Getpid())})
	require.NoError(t, err)
	t.Cleanup(func() {
		cs, _ := d.List(context.Background())
		for _, c := range cs {
			_ = d.Remove(context.Background(), c.ID)
		}
		_ = d.Close()
	})
	return d
}

func testSpec(name string) Spec {
	return Spec{
		Name: fmt.Sprintf("mbtest-%d-%s-%d", os.Getpid(), name, time.Now().UnixNano()%100000), Image: testImage,
		User: "10001:10001", Env: []string{"PATH=/usr/local/bin:/bin", "HOME=/tmp"},
		MemoryBytes: 128 << 20, NanoCPUs: 1e9, PidsLimit: 64, TmpfsBytes: 16 << 20,
		Nofile: 1024, Nproc: 4096, Network: "none", WorkingDir: "/tmp",
	}
}

func sh(t *testing.T, d *Docker, id, line string, mod ...func(*ExecSpec)) ExecResult {
	t.Helper()
	s := ExecSpec{Argv: []string{"/bin/sh", "-c", line}, Timeout: 10 * time.Second, OutputCap: 1 << 20}
	for _, m := range mod {
		m(&s)
	}
	r, err := d.Exec(context.Background(), id, s)
	require.NoError(t, err)
	return r
}

func TestHardening(t *testing.T) {
	d := newTestDocker(t)
	ctx := context.Background()
	c, err := d.Create(ctx, testSpec("hard"))
	require.NoError(t, err)
	require.True(t, c.Agent)

	tests := []struct {
		name   string
		line   string
		code   int // -1: any non-zero
		stdout string
		stderr string
	}{
		{"root fs read-only", "touch /x", -1, "", "Read-only file system"},
		{"tmp writable", "echo hi > /tmp/f && cat /tmp/f", 0, "hi\n", ""},
		{"tmp not executable", "cp /bin/busybox /tmp/bb && /tmp/bb true", 126, "", "Permission denied"},
		{"only lo", "ls /sys/class/net", 0, "lo\n", ""},
		{"non-root uid", "id -u", 0, "10001\n", ""},
		{"non-root gid", "id -g", 0, "10001\n", ""},
		{"no capabilities", "grep CapEff /proc/self/status | cut -f2", 0, "0000000000000000\n", ""},
		{"no new privs", "grep NoNewPrivs /proc/self/status | cut -f2", 0, "1\n", ""},
		{"seccomp filter", "grep '^Seccomp:' /proc/self/status | cut -f2", 0, "2\n", ""},
		{"no docker socket", "test -e /var/run/docker.sock || test -e /run/docker.sock", 1, "", ""},
		{"agent stdin unreadable", "cat /proc/1/fd/0", -1, "", "Permission denied"},
		{"agent stdout unwritable", "echo forged > /proc/1/fd/1", -1, "", "Permission denied"},
		{"agent fd list unreadable", "ls /proc/1/fd", -1, "", "Permission denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sh(t, d, c.ID, tt.line)
			if tt.code == -1 {
				require.NotZero(t, r.ExitCode, "stdout %q", r.Stdout)
			} else {
				require.Equal(t, tt.code, r.ExitCode, "stderr %q", r.Stderr)
			}
			require.Equal(t, tt.stdout, string(r.Stdout))
			require.Contains(t, string(r.Stderr), tt.stderr)
			require.Equal(t, PathAgent, r.Path)
		})
	}
	// The agent still answers after the forging attempts.
	require.Equal(t, "ok\n", string(sh(t, d, c.ID, "echo ok").Stdout))
}

func TestTimeoutKillsEscapedChildren(t *testing.T) {
	d := newTestDocker(t)
	c, err := d.Create(context.Background(), testSpec("timeout"))
	require.NoError(t, err)
	start := time.Now()
	r := sh(t, d, c.ID, "setsid sleep 300 & sleep 300", func(s *ExecSpec) { s.Timeout = 300 * time.Millisecond })
	require.Equal(t, CauseTimeout, r.Cause)
	require.Equal(t, 137, r.ExitCode)
	require.Less(t, time.Since(start), 2*time.Second)
	ps := sh(t, d, c.ID, "ps -o comm")
	require.NotContains(t, string(ps.Stdout), "sleep", "a setsid child survived the timeout")
	inspect, err := d.Inspect(context.Background(), c.ID)
	require.NoError(t, err)
	require.True(t, inspect.Running, "the timeout must not kill the container")
}

func TestOutputCap(t *testing.T) {
	d := newTestDocker(t)
	c, err := d.Create(context.Background(), testSpec("cap"))
	require.NoError(t, err)
	for _, force := range []bool{false, true} {
		start := time.Now()
		r := sh(t, d, c.ID, "head -c 100000000 /dev/zero", func(s *ExecSpec) { s.OutputCap = 1 << 20; s.ForceDockerExec = force })
		t.Logf("100 MB output, docker-exec=%v: %s", force, time.Since(start))
		require.True(t, r.Truncated)
		require.Len(t, r.Stdout, 1<<20)
	}
}

func TestOOMInsideOnly(t *testing.T) {
	d := newTestDocker(t)
	spec := testSpec("oom")
	spec.MemoryBytes = 64 << 20
	c, err := d.Create(context.Background(), spec)
	require.NoError(t, err)
	hog := `awk 'BEGIN{s="x"; while(1) s=s s}'`
	for _, force := range []bool{false, true} {
		r := sh(t, d, c.ID, hog, func(s *ExecSpec) { s.ForceDockerExec = force })
		require.Equal(t, 137, r.ExitCode, "docker-exec=%v stderr %q", force, r.Stderr)
		require.Equal(t, CauseOOM, r.Cause, "docker-exec=%v", force)
		require.Equal(t, "alive\n", string(sh(t, d, c.ID, "echo alive").Stdout))
	}
}

func TestForkBombStoppedByPidsLimit(t *testing.T) {
	d := newTestDocker(t)
	c, err := d.Create(context.Background(), testSpec("bomb"))
	require.NoError(t, err)
	r, err := d.Exec(context.Background(), c.ID, ExecSpec{Argv: []string{"/bin/sh", "-c", "f(){ f|f& }; f; sleep 1"}, Timeout: 5 * time.Second, OutputCap: 4096})
	if err == nil {
		require.Contains(t, []KillCause{CausePidsLimit, CauseTimeout}, r.Cause, "exit %d stderr %q", r.ExitCode, r.Stderr)
		require.Equal(t, CausePidsLimit, r.Cause)
	} else {
		require.ErrorIs(t, err, ErrContainerGone)
	}
	// This process (sandboxd's role) is fine and the engine still answers.
	_, err = d.Ping(context.Background())
	require.NoError(t, err)
	require.NoError(t, d.Remove(context.Background(), c.ID))
}

func TestDockerExecFallback(t *testing.T) {
	d := newTestDocker(t)
	spec := testSpec("noagent")
	spec.Image = testImageNoAgent
	c, err := d.Create(context.Background(), spec)
	require.NoError(t, err)
	require.False(t, c.Agent)
	r := sh(t, d, c.ID, "cat; echo err >&2; id -u; exit 3", func(s *ExecSpec) { s.Stdin = []byte("in\n") })
	require.Equal(t, PathDockerExec, r.Path)
	require.Equal(t, 3, r.ExitCode)
	require.Equal(t, "in\n10001\n", string(r.Stdout))
	require.Equal(t, "err\n", string(r.Stderr))
	r = sh(t, d, c.ID, "sleep 30", func(s *ExecSpec) { s.Timeout = 300 * time.Millisecond })
	require.Equal(t, CauseTimeout, r.Cause)
	require.Equal(t, 1, sh(t, d, c.ID, "touch /x").ExitCode)
}

// TestMeasure: the agent's in-process walk, returned with a command's reply
// or asked alone, agrees with du -skx run in the same container, and an
// image without the agent is measured by du through docker exec.
func TestMeasure(t *testing.T) {
	d := newTestDocker(t)
	ctx := context.Background()
	c, err := d.Create(ctx, testSpec("measure"))
	require.NoError(t, err)
	r := sh(t, d, c.ID, "mkdir -p /tmp/m/d && head -c 1000000 /dev/zero > /tmp/m/d/f && ln /tmp/m/d/f /tmp/m/hard && ln -s /bin /tmp/m/bin",
		func(s *ExecSpec) { s.Measure = "/tmp/m" })
	require.Equal(t, PathAgent, r.Path)
	require.NoError(t, r.UsageErr)
	du, err := d.du(ctx, c.ID, "/tmp/m")
	require.NoError(t, err)
	require.GreaterOrEqual(t, r.Usage, int64(1000000))
	require.True(t, du >= r.Usage && du < r.Usage+1024, "agent %d, du -sk %d", r.Usage, du)
	alone, err := d.DiskUsage(ctx, c.ID, "/tmp/m")
	require.NoError(t, err)
	require.Equal(t, r.Usage, alone)

	r = sh(t, d, c.ID, "true", func(s *ExecSpec) { s.Measure = "/tmp/none" })
	require.ErrorIs(t, r.UsageErr, errs.ErrFailedPrecondition)
	require.ErrorContains(t, r.UsageErr, "could not be measured")

	spec := testSpec("measure-noagent")
	spec.Image = testImageNoAgent
	na, err := d.Create(ctx, spec)
	require.NoError(t, err)
	r = sh(t, d, na.ID, "mkdir -p /tmp/m && head -c 1000000 /dev/zero > /tmp/m/f", func(s *ExecSpec) { s.Measure = "/tmp/m" })
	require.Equal(t, PathDockerExec, r.Path)
	require.NoError(t, r.UsageErr)
	require.GreaterOrEqual(t, r.Usage, int64(1000000))
}

func TestImageMissing(t *testing.T) {
	d := newTestDocker(t)
	spec := testSpec("missing")
	spec.Image = "moltbot-no-such-image:latest"
	_, err := d.Create(context.Background(), spec)
	require.ErrorIs(t, err, errs.ErrFailedPrecondition)
	require.Contains(t, err.Error(), "make sandbox-image")
}
