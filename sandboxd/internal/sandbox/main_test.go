//go:build integration

package sandbox

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/sandboxd/internal/backend"
)

const testImage = "moltbot-sandbox-test:latest"

var dockerSkip string

// TestMain builds the busybox test image with the repo's script, so the agent
// inside is the one in this tree.
func TestMain(m *testing.M) {
	if out, err := exec.Command("docker", "version").CombinedOutput(); err != nil {
		dockerSkip = fmt.Sprintf("Docker is not reachable (%v: %s); start the engine to run the sandbox integration tests", err, strings.TrimSpace(string(out)))
		os.Exit(m.Run())
	}
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "..", "..", "deploy", "sandbox", "build-testimage.sh")
	cmd := exec.Command("bash", script)
	cmd.Env = append(os.Environ(), "FORCE=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build test image: %v\n%s", err, out)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// fakeClock is injected so prune tests need not wait a day.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var instanceSeq int

func testPolicy() Policy {
	return Policy{Image: testImage, MemoryBytes: 128 << 20, PidsLimit: 64, TmpfsBytes: 16 << 20}
}

func newTestService(tb testing.TB, mod func(*Config)) (*Service, *backend.Docker) {
	tb.Helper()
	if dockerSkip != "" {
		tb.Skip(dockerSkip)
	}
	instanceSeq++
	inst := fmt.Sprintf("sandbox-test-%d-%d", os.Getpid(), instanceSeq)
	be, err := backend.NewDocker(backend.DockerConfig{Instance: inst})
	require.NoError(tb, err)
	cfg := Config{Backend: be, Defaults: testPolicy(), PoolSize: -1, PruneEvery: -1, NamePrefix: "mbtest-" + inst, PoolRefillDelay: -1}
	if mod != nil {
		mod(&cfg)
	}
	svc, err := New(cfg)
	require.NoError(tb, err)
	svc.Start(context.Background())
	tb.Cleanup(func() {
		svc.Close()
		cs, _ := be.List(context.Background())
		for _, c := range cs {
			_ = be.Remove(context.Background(), c.ID)
		}
		vs, _ := be.ListVolumes(context.Background())
		for _, v := range vs {
			if err := be.RemoveVolume(context.Background(), v.Name); err != nil {
				tb.Errorf("remove test volume %s: %v", v.Name, err)
			}
		}
		_ = be.Close()
	})
	return svc, be
}

func docker(tb testing.TB, args ...string) string {
	tb.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	require.NoError(tb, err, "docker %v: %s", args, out)
	return strings.TrimSpace(string(out))
}
