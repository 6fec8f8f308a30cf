package sandbox

import (
	"errors"
	"math"
	"path"
	"strings"
	"testing"

	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// FuzzPolicyValidate feeds arbitrary request policy fields (what
// Sandbox.Ensure receives over gRPC, merged over the defaults as Ensure
// does) to Validate: no panic, refusals are InvalidArgument, and an
// accepted policy holds every invariant the hardening relies on.
func FuzzPolicyValidate(f *testing.F) {
	f.Add(int8(0), int8(0), int8(0), "", "", int64(0), 0.0, int64(0), int64(0), "", "", "", "")
	f.Add(int8(2), int8(1), int8(2), "alpine:3", "none", int64(256<<20), 0.5, int64(64), int64(8<<20), "FOO", "bar", "/srv/data:/data:ro", "64m")
	f.Add(int8(3), int8(3), int8(3), "img", "host", int64(1), math.Inf(1), int64(1), int64(1), "1BAD", "x\x00", "/var/run/docker.sock:/s", "/")
	f.Add(int8(1), int8(2), int8(1), "img", "container:abc", int64(64<<30), 64.0, int64(4096), int64(32<<30), "_", "", "/a/../run/x:/y:rw", "/proc/1")
	f.Add(int8(0), int8(0), int8(0), "", "", int64(0), math.NaN(), int64(0), int64(0), "", "", "", "")
	f.Fuzz(func(t *testing.T, mode, scope, ws int8, image, network string, mem int64, cpus float64, pids, tmpfs int64,
		envK, envV, bind, quota string) {
		req := &Policy{Mode: Mode(mode), Scope: Scope(scope), WorkspaceAccess: WorkspaceAccess(ws), Image: image,
			Network: network, MemoryBytes: mem, CPUs: cpus, PidsLimit: pids, TmpfsBytes: tmpfs}
		if n, err := config.ParseBytes(quota); err == nil {
			req.WorkspaceQuota = n
		}
		if envK != "" {
			req.Env = map[string]string{envK: envV}
		}
		if bind != "" {
			req.Binds = []string{bind}
		}
		p := DefaultPolicy().Merge(req)
		err := p.Validate()
		_ = p.Hash("1000:1000", ProfileHardened, false)
		if mp, err := forMain(p); err == nil {
			_ = mp.Validate()
		}
		_ = p.Mode.String() + p.Scope.String() + p.WorkspaceAccess.String()
		if err != nil {
			if !errors.Is(err, errs.ErrInvalidArgument) {
				t.Fatalf("Validate: error %v is not InvalidArgument", err)
			}
			return
		}
		switch {
		case p.Network == "host" || strings.HasPrefix(p.Network, "container:"):
			t.Fatalf("network %q accepted", p.Network)
		case !(p.CPUs > 0 && p.CPUs <= 64):
			t.Fatalf("cpus %v accepted", p.CPUs)
		case p.MemoryBytes < 32<<20 || p.MemoryBytes > 64<<30:
			t.Fatalf("memory %d accepted", p.MemoryBytes)
		case p.PidsLimit < 16 || p.PidsLimit > 4096:
			t.Fatalf("pids %d accepted", p.PidsLimit)
		case p.TmpfsBytes < 1<<20 || p.TmpfsBytes > p.MemoryBytes/2:
			t.Fatalf("tmpfs %d accepted with memory %d", p.TmpfsBytes, p.MemoryBytes)
		case p.Image == "" || strings.ContainsAny(p.Image, " \t\n\x00"):
			t.Fatalf("image %q accepted", p.Image)
		}
		for _, b := range p.Binds {
			nb, err := normalizeBind(b)
			if err != nil {
				t.Fatalf("bind %q accepted by Validate but not by normalizeBind: %v", b, err)
			}
			parts := strings.Split(nb, ":")
			if len(parts) != 3 || (parts[2] != "ro" && parts[2] != "rw") {
				t.Fatalf("bind %q normalised to %q", b, nb)
			}
			mustSafeSource(t, "bind "+b, parts[0])
			if d := parts[1]; d == "/" || d == "/proc" || strings.HasPrefix(d, "/proc/") || d == "/dev" || strings.HasPrefix(d, "/dev/") {
				t.Fatalf("bind %q accepted with destination %s", b, d)
			}
		}
		if p.WorkspaceQuota < 1<<20 || p.WorkspaceQuota > 1<<40 {
			t.Fatalf("workspace quota %d accepted", p.WorkspaceQuota)
		}
	})
}

func mustSafeSource(t *testing.T, what, src string) {
	t.Helper()
	c := path.Clean(src)
	if !path.IsAbs(c) || c == "/" || strings.Contains(c, "docker.sock") {
		t.Fatalf("%s: source %q accepted", what, src)
	}
	for _, f := range config.ForbiddenBindSources {
		if c == f || strings.HasPrefix(c, f+"/") {
			t.Fatalf("%s: source %q under %s accepted", what, src, f)
		}
	}
}
