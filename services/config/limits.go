package config

import (
	"fmt"
	"math"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// Sandbox resource limits. The config validator and sandboxd apply the same
// bounds through the functions below, so a value `config set` accepts is one
// sandboxd runs (one rule, one place).
const (
	MinMemoryBytes int64   = 32 << 20
	MaxMemoryBytes int64   = 64 << 30
	MaxCPUs        float64 = 64
	MinPidsLimit   int64   = 16
	MaxPidsLimit   int64   = 4096
	// Workspace quota (agents.defaults.sandbox.workspaceQuota).
	DefaultWorkspaceQuota int64 = 512 << 20
	MinWorkspaceQuota     int64 = 1 << 20
	MaxWorkspaceQuota     int64 = 1 << 40
)

// SizeFormat names the accepted memory formats, for error messages.
const SizeFormat = "a number of bytes or a number with a k, m or g suffix, e.g. 512m or 1g"

// ParseBytes reads a Docker-style size: a number of bytes, or a number with
// a b, k, m or g suffix (binary units; "mb"/"mib" spellings accepted).
func ParseBytes(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "ib"), "b")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'k':
			mult, t = 1<<10, t[:n-1]
		case 'm':
			mult, t = 1<<20, t[:n-1]
		case 'g':
			mult, t = 1<<30, t[:n-1]
		}
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || !(f > 0) || f*float64(mult) > 1<<50 {
		return 0, fmt.Errorf("%q is not a positive size", s)
	}
	return int64(f * float64(mult)), nil
}

// CheckMemoryBytes bounds the sandbox memory limit.
func CheckMemoryBytes(n int64) error {
	if n < MinMemoryBytes || n > MaxMemoryBytes {
		return fmt.Errorf("%d bytes outside 32 MiB..64 GiB", n)
	}
	return nil
}

// CheckCPUs bounds the sandbox CPU quota. Written as a range test so NaN is
// refused too.
func CheckCPUs(f float64) error {
	if !(f > 0 && f <= MaxCPUs) {
		return fmt.Errorf("%g outside (0, %g]", f, MaxCPUs)
	}
	return nil
}

// CheckPidsLimit bounds the sandbox process limit.
func CheckPidsLimit(n int64) error {
	if n < MinPidsLimit || n > MaxPidsLimit {
		return fmt.Errorf("%d outside %d..%d", n, MinPidsLimit, MaxPidsLimit)
	}
	return nil
}

// CheckWorkspaceQuota bounds a sandbox workspace's quota.
func CheckWorkspaceQuota(n int64) error {
	if n < MinWorkspaceQuota || n > MaxWorkspaceQuota {
		return fmt.Errorf("%d bytes outside 1 MiB..1 TiB", n)
	}
	return nil
}

// WorkspaceQuotaValue converts the config's workspaceQuota (a size string
// or a number of bytes) and checks its bounds.
func WorkspaceQuotaValue(v any) (int64, error) {
	n, err := sizeValue(v)
	if err != nil {
		return 0, err
	}
	return n, CheckWorkspaceQuota(n)
}

func sizeValue(v any) (int64, error) {
	switch t := v.(type) {
	case string:
		return ParseBytes(t)
	case float64:
		if t != math.Trunc(t) || t <= 0 || t > 1<<50 {
			return 0, fmt.Errorf("%g is not a positive whole number of bytes", t)
		}
		return int64(t), nil
	}
	return 0, fmt.Errorf("is %s, want a size", typeName(v))
}

// memoryValue converts the config's docker.memory (a size string or a
// number of bytes) and checks its bounds.
func memoryValue(v any) (int64, error) {
	switch t := v.(type) {
	case string:
		n, err := ParseBytes(t)
		if err != nil {
			return 0, err
		}
		return n, CheckMemoryBytes(n)
	case float64:
		if t != math.Trunc(t) || t > 1<<50 {
			return 0, fmt.Errorf("%g is not a whole number of bytes", t)
		}
		return int64(t), CheckMemoryBytes(int64(t))
	}
	return 0, fmt.Errorf("is %s, want a size", typeName(v))
}

// networkNameRE is Docker's network name shape.
var networkNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// CheckNetworkName refuses a sandbox network that shares a namespace with
// the host or another container, or is not a Docker network name.
func CheckNetworkName(n string) error {
	switch {
	case n == "host":
		return fmt.Errorf(`network "host" shares the host's network stack and defeats isolation`)
	case strings.HasPrefix(n, "container:"):
		return fmt.Errorf("network %q joins another container's network namespace and defeats isolation", n)
	case !networkNameRE.MatchString(n):
		return fmt.Errorf("%q is not a Docker network name", n)
	}
	return nil
}

// Sandbox environment limits.
const (
	MaxSandboxEnv      = 64
	MaxSandboxEnvValue = 4096
)

var envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// CheckSandboxEnv bounds docker.env: at most 64 entries, NAME=value with a
// shell-safe name and a value without NUL of at most 4096 bytes.
func CheckSandboxEnv(env map[string]string) error {
	if len(env) > MaxSandboxEnv {
		return fmt.Errorf("%d entries, max %d", len(env), MaxSandboxEnv)
	}
	for k, v := range env {
		if !envKeyRE.MatchString(k) || strings.ContainsRune(v, 0) || len(v) > MaxSandboxEnvValue {
			return fmt.Errorf("entry %q is not NAME=value (letters, digits, _; value without NUL, <= %d bytes)", k, MaxSandboxEnvValue)
		}
	}
	return nil
}

// ForbiddenBindSources are host paths a bind may never expose: the engine's
// socket (root on the host), kernel and runtime trees.
var ForbiddenBindSources = []string{"/proc", "/sys", "/dev", "/run", "/var/run", "/var/lib/docker", "/var/lib/containerd", "/boot"}

// CheckBindSource refuses a host path that would expose the host to the
// sandbox: the host root, a socket (the Docker socket is root on the host),
// or a kernel/runtime tree.
func CheckBindSource(src string) error {
	clean := path.Clean(src)
	if clean == "/" {
		return fmt.Errorf("binding the host root / gives the sandbox the whole host")
	}
	if strings.HasSuffix(clean, ".sock") || strings.Contains(clean, "docker.sock") {
		return fmt.Errorf("%q looks like a socket; the Docker socket is root on the host", src)
	}
	for _, f := range ForbiddenBindSources {
		if clean == f || strings.HasPrefix(clean, f+"/") {
			return fmt.Errorf("%q is under %s, which exposes the host (the Docker socket lives in /run)", src, f)
		}
	}
	return nil
}

// NormalizeBind checks a docker.binds entry "src:dst[:ro|rw]" and returns it
// with an explicit mode (read-only unless rw is asked for).
func NormalizeBind(b string) (string, error) {
	parts := strings.Split(b, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return "", fmt.Errorf("%q is not src:dst[:ro|rw]", b)
	}
	src, dst := parts[0], parts[1]
	mode := "ro"
	if len(parts) == 3 {
		mode = parts[2]
	}
	if mode != "ro" && mode != "rw" {
		return "", fmt.Errorf("%q: mode %q is not ro or rw", b, mode)
	}
	if !path.IsAbs(src) || !path.IsAbs(dst) {
		return "", fmt.Errorf("%q: both paths must be absolute", b)
	}
	if err := CheckBindSource(src); err != nil {
		return "", err
	}
	d := path.Clean(dst)
	for _, f := range []string{"/", "/proc", "/sys", "/dev", "/usr/local/bin"} {
		if d == f || (f != "/" && strings.HasPrefix(d, f+"/")) {
			return "", fmt.Errorf("%q: destination %s is reserved", b, d)
		}
	}
	return path.Clean(src) + ":" + d + ":" + mode, nil
}
