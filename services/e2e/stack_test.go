//go:build e2e

// Package e2e walks the operator's journeys on the real compose stack, the
// way README tells an operator to: `make up`, then the host CLI
// (./bin/moltbot with ./.moltbot) and `compose run --rm cli`. It needs the
// images built by `make up` and runs in `make test-e2e` (and .ci/run).
//
// The tests share one stack and run in order; a test that restarts or
// purges the stack leaves it up again for the next.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moltbot/moltbot-secure/services/testharness"
)

// repo is the repository root (this package is services/e2e).
var repo = func() string {
	d, err := filepath.Abs("../..")
	if err != nil {
		panic(err)
	}
	return d
}()

// bundle is the host CLI's state dir `make up` exported (MOLTBOT_BUNDLE_DIR,
// relative to the repo), gatewayAddr its published client port.
func bundle() string {
	d := os.Getenv("MOLTBOT_BUNDLE_DIR")
	if d == "" {
		d = ".moltbot"
	}
	if !filepath.IsAbs(d) {
		d = filepath.Join(repo, d)
	}
	return d
}

func gatewayAddr() string {
	p := os.Getenv("MOLTBOT_PORT")
	if p == "" {
		p = "18789"
	}
	return "127.0.0.1:" + p
}

// helperImage has a static busybox; files inside the stack's volumes are
// read and tampered with through it (the service images have no shell).
const helperImage = "moltbot-sandbox-test:latest"

type result struct {
	Out, Err string
	Code     int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, r.Out, r.Err)
}

func run(t testing.TB, timeout time.Duration, env []string, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{Out: out.String(), Err: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.Code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	if runsCLI(name, args) {
		if err := testharness.CheckCLIOutput(r.Out + r.Err); err != nil {
			t.Errorf("%s %v: %v", name, args, err)
		}
	}
	return r
}

// runsCLI: the host moltbot, or `compose run ... cli ...`.
func runsCLI(name string, args []string) bool {
	if filepath.Base(name) == "moltbot" {
		return true
	}
	return slices.Contains(args, "run") && slices.Contains(args, "cli")
}

func composeCmd() []string {
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}
	}
	return []string{"docker-compose"}
}

func compose(t testing.TB, args ...string) result {
	t.Helper()
	c := composeCmd()
	return run(t, 3*time.Minute, nil, c[0], append(c[1:], args...)...)
}

func mustMake(t testing.TB, target string) {
	t.Helper()
	r := run(t, 10*time.Minute, nil, "make", target)
	if r.Code != 0 {
		t.Fatalf("make %s: %s", target, r)
	}
}

// owner runs the host CLI with the bundle `make up` exported (cli cert +
// cli.token: the owner).
func owner(t testing.TB, args ...string) result {
	t.Helper()
	return run(t, 2*time.Minute, []string{"MOLTBOT_STATE_DIR=" + bundle(), "MOLTBOT_GATEWAY=" + gatewayAddr(), "CLAWDBOT_GATEWAY_TOKEN="},
		filepath.Join(repo, "bin", "moltbot"), args...)
}

// clientDir is a bundle holding only what an app gets: the CA and the
// gateway token.
func clientDir(t testing.TB) string {
	t.Helper()
	d := t.TempDir()
	if err := os.MkdirAll(filepath.Join(d, "pki"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ca.pem", "gateway-auth.token"} {
		b, err := os.ReadFile(filepath.Join(bundle(), "pki", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "pki", f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func client(t testing.TB, dir string, args ...string) result {
	t.Helper()
	return run(t, 2*time.Minute, []string{"MOLTBOT_STATE_DIR=" + dir, "MOLTBOT_GATEWAY=" + gatewayAddr(), "CLAWDBOT_GATEWAY_TOKEN="},
		filepath.Join(repo, "bin", "moltbot"), args...)
}

// containerOf returns the id of a compose service's container.
func containerOf(t testing.TB, svc string) string {
	t.Helper()
	r := compose(t, "ps", "-q", svc)
	id := strings.TrimSpace(r.Out)
	if r.Code != 0 || id == "" {
		t.Fatalf("no container for %s: %s", svc, r)
	}
	return id
}

// volumeAt names the volume mounted at dest in svc's container.
func volumeAt(t testing.TB, svc, dest string) string {
	t.Helper()
	r := run(t, time.Minute, nil, "docker", "inspect", "-f",
		`{{range .Mounts}}{{if eq .Destination "`+dest+`"}}{{.Name}}{{end}}{{end}}`, containerOf(t, svc))
	v := strings.TrimSpace(r.Out)
	if r.Code != 0 || v == "" {
		t.Fatalf("no volume at %s in %s: %s", dest, svc, r)
	}
	return v
}

// inVolume runs a busybox shell script as root with volume mounted at /v.
func inVolume(t testing.TB, volume, script string) result {
	t.Helper()
	return run(t, time.Minute, nil, "docker", "run", "--rm", "--network", "none", "--user", "0:0",
		"--entrypoint", "/bin/busybox", "-v", volume+":/v", helperImage, "sh", "-c", script)
}

func waitHealthy(t testing.TB) {
	t.Helper()
	c := composeCmd()
	r := run(t, 2*time.Minute, nil, "bash", append([]string{"deploy/wait-healthy.sh", "60"}, c...)...)
	if r.Code != 0 {
		t.Fatalf("stack not healthy: %s", r)
	}
}

func TestMain(m *testing.M) {
	if os.Getenv("MOLTBOT_E2E_SKIP_UP") == "" {
		cmd := exec.Command("make", "up")
		cmd.Dir, cmd.Stdout, cmd.Stderr = repo, os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "make up:", err)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}
