// Package doctor is `moltbot doctor`: environment and state checks, each
// with its fix; --fix repairs what is safe (permissions without following
// symlinks, missing directories and certificates).
package doctor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	"github.com/moltbot/moltbot-secure/cli/internal/offline"
	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/pkiinit"
	"github.com/moltbot/moltbot-secure/services/statedir"
	"github.com/moltbot/moltbot-secure/services/tlsutil"
)

// Check is one doctor result.
type Check struct {
	Name   string `json:"name"`
	Status string `json:"status"` // ok, warn, fail, fixed
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// Options are the flags of `doctor`.
type Options struct{ Fix bool }

// NewCmd returns `moltbot doctor`.
func NewCmd(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check the state dir, permissions, config, keys, certificates, Docker and the services (exit 3 on a failure)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(o)
			}
			return run(f, o)
		},
	}
	cmd.Flags().BoolVar(&o.Fix, "fix", false, "repair permissions (never following symlinks) and create what is missing")
	return cmd
}

func run(f *cmdutil.Factory, o *Options) error {
	dir, err := f.StateDir()
	if err != nil {
		return err
	}
	checks := Run(dir, o.Fix, f)
	failed := 0
	if f.JSON {
		if err := f.PrintJSON(map[string]any{"state_dir": dir, "checks": checks}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(f.Out, "state dir: %s\n", dir)
	}
	for _, c := range checks {
		if c.Status == "fail" {
			failed++
		}
		if f.JSON {
			continue
		}
		fmt.Fprintf(f.Out, "  %-6s %-20s %s\n", strings.ToUpper(c.Status), c.Name, c.Detail)
		if c.Fix != "" && c.Status != "ok" && c.Status != "fixed" {
			fmt.Fprintf(f.Out, "         %-20s fix: %s\n", "", c.Fix)
		}
	}
	if failed > 0 {
		return &cmdutil.DegradedError{Msg: fmt.Sprintf("%d check(s) failed", failed)}
	}
	return nil
}

// Run performs every check.
func Run(dir string, fix bool, f *cmdutil.Factory) []Check {
	var out []Check
	add := func(c Check) { out = append(out, c) }

	// 1. State dir.
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		c := Check{Name: "state dir", Status: "fail", Detail: dir + " does not exist", Fix: "moltbot doctor --fix (or moltbot certs init)"}
		if fix {
			if err := statedir.Ensure(dir); err == nil {
				c.Status, c.Detail = "fixed", "created "+dir
			}
		}
		add(c)
	} else if fix {
		_ = statedir.Ensure(dir)
	}

	// 2. Permissions: dirs 0700, files 0600 (public certs may be 0644).
	issues, err := statedir.Check(dir, statedir.Options{Fix: fix, FileMode: wantMode})
	switch {
	case err != nil:
		add(Check{Name: "permissions", Status: "fail", Detail: err.Error(), Fix: "moltbot doctor --fix"})
	case len(issues) == 0:
		add(Check{Name: "permissions", Status: "ok", Detail: "dirs 0700, files 0600"})
	default:
		for _, is := range issues {
			st := "fail"
			if is.Fixed {
				st = "fixed"
			}
			fixText := "moltbot doctor --fix"
			if is.Kind == "symlink_escape" {
				fixText = "remove the symlink and keep the file inside the state dir"
			}
			add(Check{Name: "permissions", Status: st, Detail: is.Path + ": " + is.Message, Fix: fixText})
		}
	}

	// The host dir may be only the CLI's bundle (pki/): under compose the
	// config, the key and the sandbox live in the stack, which is asked
	// below; judging the bundle dir as a state dir would report a config and
	// a key the stack never reads.
	bundle := offline.StackDown(dir) != nil
	stack, stackErr := fetchStack(f)

	// 3. Config.
	cfgPath := statedir.ConfigPath(dir)
	mode := "non-main"
	image := config.DefaultSandboxImage
	if !bundle {
		c, err := config.Load(cfgPath)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			add(Check{Name: "config", Status: "ok", Detail: cfgPath + " absent: defaults apply"})
		case err != nil:
			add(Check{Name: "config", Status: "fail", Detail: err.Error(), Fix: "fix the file, or `moltbot rollback` to the last backup"})
		default:
			if errs := config.Errors(c.Validate()); len(errs) > 0 {
				add(Check{Name: "config", Status: "fail", Detail: errs[0].String(), Fix: "moltbot config validate; moltbot security migrate"})
			} else {
				add(Check{Name: "config", Status: "ok", Detail: cfgPath + " is valid"})
			}
			v := c.View()
			if v.Agents.Sandbox.Mode != "" {
				mode = v.Agents.Sandbox.Mode
			}
			if v.Agents.Sandbox.Docker.Image != "" {
				image = v.Agents.Sandbox.Docker.Image
			}
		}
	}

	// 4. Key (the stack's secretsd answers for it when it runs).
	keyFile := filepath.Join(dir, "keys", "secrets.key")
	if !bundle && stack == nil {
		if fi, err := os.Stat(keyFile); err == nil {
			st := "ok"
			if fi.Mode().Perm()&0o077 != 0 {
				st = "fail"
			}
			add(Check{Name: "secrets key", Status: st, Detail: fmt.Sprintf("%s mode %04o", keyFile, fi.Mode().Perm()), Fix: "moltbot doctor --fix"})
		} else {
			add(Check{Name: "secrets key", Status: "warn", Detail: keyFile + " not here (secretsd creates it on first start; in compose it lives in secretsd's volume)", Fix: "start secretsd, or moltbot security migrate"})
		}
	}

	// 5. Certificates (the CLI's own, in this dir).
	pki := filepath.Join(dir, "pki")
	exp := tlsutil.Expiries(pki)
	if len(exp) == 0 {
		c := Check{Name: "certificates", Status: "fail", Detail: "no certificates in " + pki, Fix: "moltbot certs init"}
		if fix {
			if _, err := pkiinit.Init(pkiinit.Options{PKIDir: pki}); err == nil {
				c.Status, c.Detail = "fixed", "created the CA, certificates and tokens in "+pki
			} else {
				c.Detail += ": " + err.Error()
			}
		}
		add(c)
	}
	now := time.Now()
	for _, e := range exp {
		add(certCheck("certificates", e.Name, e.NotAfter, e.Err, now))
	}

	// 6. Docker and the sandbox image, when the sandbox mode needs them
	// (sandboxd's own view, in the stack checks, when the stack runs).
	switch {
	case stack != nil || bundle:
	case mode == "off":
		add(Check{Name: "docker", Status: "ok", Detail: "sandbox mode off: Docker not needed (not recommended)"})
	default:
		add(dockerCheck(image))
	}

	// 7. The stack, through the gateway.
	if stack != nil {
		out = append(out, stackChecks(stack, now)...)
	} else {
		add(unreachable(f, stackErr))
	}
	// A check that passed has nothing to fix.
	for i := range out {
		if out[i].Status == "ok" || out[i].Status == "fixed" {
			out[i].Fix = ""
		}
	}
	return out
}

// unreachable says why the stack could not be asked, in words.
func unreachable(f *cmdutil.Factory, err error) Check {
	c := Check{Name: "services", Status: "fail"}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		c.Detail, c.Fix = "the stack is not running (no answer from the gateway at "+f.GatewayAddr+")", "make up"
	case codes.Unauthenticated, codes.PermissionDenied:
		c.Detail = "the gateway at " + f.GatewayAddr + " refused this CLI: " + status.Convert(err).Message()
		c.Fix = "use the bundle `make up` exported: export MOLTBOT_STATE_DIR=$PWD/.moltbot"
	case codes.ResourceExhausted:
		c.Detail, c.Fix = "locked out after failed authentications: "+status.Convert(err).Message(), "wait a minute, then moltbot status"
	default:
		c.Detail, c.Fix = "gateway not checked: "+status.Convert(err).Message(), "make up"
	}
	return c
}

func wantMode(rel string) fs.FileMode {
	if strings.HasPrefix(rel, "pki"+string(filepath.Separator)) {
		return statedir.PKIMode(rel)
	}
	return 0o600
}

func dockerCheck(image string) Check {
	sock := "/var/run/docker.sock"
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		u, err := url.Parse(h)
		if err != nil || u.Scheme != "unix" {
			return Check{Name: "docker", Status: "warn", Detail: "DOCKER_HOST=" + h + " is not a unix socket; not checked here (sandboxd reports it in `moltbot status --all`)"}
		}
		sock = u.Path
	}
	hc := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	resp, err := hc.Get("http://docker/_ping")
	if err != nil {
		return Check{Name: "docker", Status: "fail", Detail: "Docker engine not reachable at " + sock + ": every /exec will be refused", Fix: "start the Docker engine (every /exec runs in a sandbox)"}
	}
	resp.Body.Close()
	resp, err = hc.Get("http://docker/images/" + url.PathEscape(image) + "/json")
	if err != nil {
		return Check{Name: "docker", Status: "fail", Detail: err.Error()}
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return Check{Name: "sandbox image", Status: "fail", Detail: image + " is missing: every /exec will be refused", Fix: "make sandbox-image"}
	}
	return Check{Name: "docker", Status: "ok", Detail: "engine reachable, " + image + " present"}
}
