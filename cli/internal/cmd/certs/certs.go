// Package certs is `moltbot certs ...`.
package certs

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	"github.com/moltbot/moltbot-secure/services/pkiinit"
	"github.com/moltbot/moltbot-secure/services/statedir"
	"github.com/moltbot/moltbot-secure/services/tlsutil"
)

// NewCmd returns `moltbot certs`.
func NewCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "certs", Short: "Internal CA, service certificates and service tokens"}
	cmd.AddCommand(newCmdInit(f, nil), newCmdRotate(f))
	return cmd
}

func newCmdRotate(f *cmdutil.Factory) *cobra.Command {
	var ca bool
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Reissue every leaf certificate (--ca: also a new CA; the old one stays trusted during the overlap)",
		Long: "Run where the CA key lives (the state dir's pki/). Services re-read their certificate files\n" +
			"within a second; open connections keep working. In compose: docker-compose run --rm init certs rotate --state-dir=/init",
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			// Where the CA key lives: told, never a bundle found by walking.
			dir, err := statedir.Resolve(f.StateDirFlag)
			if err != nil {
				return err
			}
			pki := filepath.Join(dir, "pki")
			res, err := pkiinit.Rotate(pki, ca, time.Now())
			if err != nil {
				return err
			}
			if f.JSON {
				return f.PrintJSON(map[string]any{"pki_dir": pki, "reissued": res.Created})
			}
			for _, c := range res.Created {
				fmt.Fprintf(f.Out, "reissued %s\n", c)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&ca, "ca", false, "also create a new CA (the bundle keeps the old CA for the overlap)")
	return cmd
}

// InitOptions are the flags of `certs init`.
type InitOptions struct {
	Force       bool
	Owners      []string
	ChownDirs   []string
	SharedDirs  []string
	Export      string
	ExportOwner string
	ExtraDNS    []string
	// DefaultConfig is path=uid:gid: the gateway's config, written with the
	// phase-1 defaults when there is none (never replaced).
	DefaultConfig string
}

func newCmdInit(f *cmdutil.Factory, runF func(*InitOptions) error) *cobra.Command {
	o := &InitOptions{}
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create the CA, a certificate and a token per service (idempotent; keeps existing keys)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if runF != nil {
				return runF(o)
			}
			return initRun(f, o)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&o.Force, "force", false, "replace existing keys, certificates and tokens")
	fl.StringSliceVar(&o.Owners, "owner", nil, "id=uid:gid: chown that identity's key and token (mode 0400)")
	fl.StringSliceVar(&o.ChownDirs, "chown-dir", nil, "path=uid:gid: create a service state dir owned by uid:gid, mode 0700")
	fl.StringSliceVar(&o.SharedDirs, "shared-dir", nil, "path=uid:gid: create a dir owned by uid:gid, mode 2750 (setgid: files get the group gid; the secret-files volume)")
	fl.StringVar(&o.Export, "export", "", "also copy the CLI client bundle (CA, cli cert/key, tokens) into DIR/pki")
	fl.StringVar(&o.ExportOwner, "export-owner", "", "uid:gid owning the exported bundle")
	fl.StringSliceVar(&o.ExtraDNS, "gateway-dns", nil, "extra DNS names for the gateway certificate")
	fl.StringVar(&o.DefaultConfig, "default-config", "", "path=uid:gid: write the default phase-1 moltbot.json there (0600) when none exists")
	return cmd
}

func initRun(f *cmdutil.Factory, o *InitOptions) error {
	owners, err := pkiinit.ParseOwners(o.Owners)
	if err != nil {
		return &cmdutil.UsageError{Err: err}
	}
	var dirs []struct {
		path string
		ow   tlsutil.Owner
	}
	for _, s := range o.ChownDirs {
		p, ug, ok := cut(s)
		ow, perr := pkiinit.ParseUIDGID(ug)
		if !ok || perr != nil {
			return &cmdutil.UsageError{Err: fmt.Errorf("--chown-dir %q: want path=uid:gid", s)}
		}
		dirs = append(dirs, struct {
			path string
			ow   tlsutil.Owner
		}{p, ow})
	}
	var shared []struct {
		path string
		ow   tlsutil.Owner
	}
	for _, s := range o.SharedDirs {
		p, ug, ok := cut(s)
		ow, perr := pkiinit.ParseUIDGID(ug)
		if !ok || perr != nil {
			return &cmdutil.UsageError{Err: fmt.Errorf("--shared-dir %q: want path=uid:gid", s)}
		}
		shared = append(shared, struct {
			path string
			ow   tlsutil.Owner
		}{p, ow})
	}
	var defCfg string
	var defOwner tlsutil.Owner
	if o.DefaultConfig != "" {
		p, ug, ok := cut(o.DefaultConfig)
		ow, perr := pkiinit.ParseUIDGID(ug)
		if !ok || perr != nil || p == "" {
			return &cmdutil.UsageError{Err: fmt.Errorf("--default-config %q: want path=uid:gid", o.DefaultConfig)}
		}
		defCfg, defOwner = p, ow
	}
	var exportOwner *tlsutil.Owner
	if o.ExportOwner != "" {
		ow, err := pkiinit.ParseUIDGID(o.ExportOwner)
		if err != nil {
			return &cmdutil.UsageError{Err: fmt.Errorf("--export-owner: %w", err)}
		}
		exportOwner = &ow
	}
	// certs init makes a PKI where it is told (flag, env, else ~/.moltbot),
	// never in a bundle found by walking: a bundle holds no CA key.
	dir, err := statedir.Resolve(f.StateDirFlag)
	if err != nil {
		return err
	}
	pki := filepath.Join(dir, "pki")
	if makesNewCA(pki, o.Force) {
		bundle, addr := f.RunningStack()
		if err := checkNoOtherStack(addr, pki, bundle); err != nil {
			return err
		}
	}
	if err := statedir.Ensure(dir); err != nil {
		return err
	}
	res, err := pkiinit.Init(pkiinit.Options{PKIDir: pki, Force: o.Force, Owners: owners, ExtraDNS: o.ExtraDNS})
	if err != nil {
		return err
	}
	for _, d := range dirs {
		if err := pkiinit.ChownDir(d.path, d.ow); err != nil {
			return err
		}
	}
	for _, d := range shared {
		if err := pkiinit.SharedDir(d.path, d.ow); err != nil {
			return err
		}
	}
	wroteConfig := false
	if defCfg != "" {
		if wroteConfig, err = pkiinit.DefaultConfig(defCfg, &defOwner); err != nil {
			return err
		}
	}
	if o.Export != "" {
		if err := pkiinit.Export(pki, o.Export, exportOwner); err != nil {
			return err
		}
	}
	if f.JSON {
		return f.PrintJSON(map[string]any{"pki_dir": pki, "created": res.Created, "kept": res.Kept})
	}
	fmt.Fprintf(f.Out, "pki: %s (%d created, %d kept)\n", pki, len(res.Created), len(res.Kept))
	for _, c := range res.Created {
		fmt.Fprintf(f.Out, "  created %s\n", c)
	}
	if wroteConfig {
		fmt.Fprintf(f.Out, "config: wrote the defaults to %s\n", defCfg)
	}
	return nil
}

func cut(s string) (string, string, bool) {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '=' {
			return s[:i], s[i+1:], true
		}
	}
	return "", "", false
}
