// Package auditcmd is `moltbot security audit`.
package auditcmd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	"github.com/moltbot/moltbot-secure/services/audit"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/statedir"
	"github.com/moltbot/moltbot-secure/services/tlsutil"
)

// Options are the flags of `security audit`.
type Options struct {
	Deep     bool
	Fix      bool
	DryRun   bool
	SARIF    bool
	MinScore int
	Offline  bool
}

// NewCmd returns `moltbot security audit`.
func NewCmd(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	o := &Options{MinScore: -1}
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Audit the installation: findings, a 0-100 score, safe fixes with --fix, live probes with --deep",
		Long: `Score: start at 100; each critical finding costs 20 points, each warning 5,
info nothing (floor 0). Bands: 90+ excellent, 85+ good, 70+ fair, 50+ poor, else critical.
Acknowledged findings (security.acknowledged in the config) are shown but cost nothing;
criticals about auth cannot be acknowledged.

Without a reachable gateway (or with --offline) the audit runs locally on the state dir.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if o.DryRun && !o.Fix {
				return &cmdutil.UsageError{Err: errors.New("--dry-run needs --fix")}
			}
			if runF != nil {
				return runF(o)
			}
			return run(c.Context(), f, o)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&o.Deep, "deep", false, "add live probes against the running stack")
	fl.BoolVar(&o.Fix, "fix", false, "apply the safe fixes (backs up first), then audit again")
	fl.BoolVar(&o.DryRun, "dry-run", false, "with --fix: show what would change")
	fl.BoolVar(&o.SARIF, "sarif", false, "print SARIF 2.1.0")
	fl.IntVar(&o.MinScore, "min-score", -1, "exit 3 when the score is below N")
	fl.BoolVar(&o.Offline, "offline", false, "audit the state dir locally, without the gateway")
	return cmd
}

func run(ctx context.Context, f *cmdutil.Factory, o *Options) error {
	if ctx == nil {
		ctx = context.Background()
	}
	var rep audit.Report
	var fixes []string
	before := -1
	var err error
	if !o.Offline {
		rep, fixes, before, err = online(ctx, f, o)
		if status.Code(err) == codes.Unavailable {
			fmt.Fprintln(f.Err, "notice: the gateway is not reachable; auditing the state dir offline (no key status, no live probes)")
			o.Offline = true
		} else if err != nil {
			return err
		}
	}
	if o.Offline {
		if o.Deep {
			fmt.Fprintln(f.Err, "notice: --deep needs the running stack; skipped offline")
		}
		rep, fixes, before, err = offline(f, o)
		if err != nil {
			return err
		}
	}
	if err := render(f, o, rep, fixes, before); err != nil {
		return err
	}
	if o.MinScore >= 0 && rep.Score < o.MinScore {
		return &cmdutil.DegradedError{Msg: fmt.Sprintf("score %d is below --min-score %d", rep.Score, o.MinScore)}
	}
	return nil
}

func online(ctx context.Context, f *cmdutil.Factory, o *Options) (audit.Report, []string, int, error) {
	cc, err := f.Gateway()
	if err != nil {
		return audit.Report{}, nil, 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	resp, err := gatewayv1.NewGatewayClient(cc).Audit(ctx, &gatewayv1.AuditRequest{Deep: o.Deep, Fix: o.Fix, DryRun: o.DryRun})
	if err != nil {
		return audit.Report{}, nil, 0, err
	}
	rep := audit.Report{Findings: audit.FromProto(resp.GetFindings()), Score: int(resp.GetScore()), Band: resp.GetBand()}
	return rep, resp.GetFixes(), int(resp.GetScoreBeforeFix()), nil
}

// offline audits the state dir in this process. --fix applies what needs
// no secretsd (permissions); config edits and a new token need the gateway.
func offline(f *cmdutil.Factory, o *Options) (audit.Report, []string, int, error) {
	dir, err := f.StateDir()
	if err != nil {
		return audit.Report{}, nil, 0, err
	}
	in := Input(dir)
	rep := audit.Run(in)
	before := rep.Score
	var fixes []string
	if o.Fix {
		for _, a := range audit.Plan(rep, in) {
			if o.DryRun {
				fixes = append(fixes, "would: "+a.Description)
				continue
			}
			msg, err := applyOffline(in, a)
			if err != nil {
				fixes = append(fixes, fmt.Sprintf("not applied: %s: %v", a.Description, err))
				continue
			}
			fixes = append(fixes, msg)
		}
		if !o.DryRun && len(fixes) > 0 {
			rep = audit.Run(Input(dir))
		}
	}
	return rep, fixes, before, nil
}

// Input gathers the engine's input from the local state dir.
func Input(dir string) audit.Input {
	cfgPath := statedir.ConfigPath(dir)
	in := audit.Input{ConfigPath: cfgPath, ProcessUID: os.Getuid(), Now: time.Now(), IsSecretPath: config.IsSecretPath, CheckToken: auth.CheckToken}
	c, err := config.Load(cfgPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		in.Config = map[string]any{}
	case err != nil:
		in.ConfigErr = err
	default:
		in.Config = c.Raw
	}
	if snap, err := audit.SnapshotDir(dir); err == nil {
		in.Snapshot = snap
	}
	if t := os.Getenv(cmdutil.EnvGatewayToken); t != "" {
		in.Token, in.TokenSource = t, "$"+cmdutil.EnvGatewayToken
	}
	for _, e := range tlsutil.Expiries(filepath.Join(dir, "pki")) {
		in.Certs = append(in.Certs, audit.CertInfo{Name: e.Name, NotAfter: e.NotAfter, Err: e.Err})
	}
	return in
}

func applyOffline(in audit.Input, a audit.FixAction) (string, error) {
	switch a.Kind {
	case audit.KindChmod:
		return a.Description, audit.Chmod(filepath.Dir(in.ConfigPath), a.Path, a.Mode)
	default:
		// Config edits need the gateway too: its backup of the config is
		// sealed under the secrets key, a local copy would be plaintext.
		return "", errors.New("needs the running gateway (secretsd seals the backup and encrypts a new token): start the stack and run `moltbot security audit --fix`")
	}
}

func render(f *cmdutil.Factory, o *Options, rep audit.Report, fixes []string, before int) error {
	switch {
	case o.SARIF:
		return audit.SARIF(f.Out, rep, audit.SARIFOptions{ToolVersion: "moltbot"})
	case f.JSON:
		return audit.JSON(f.Out, rep, audit.JSONOptions{})
	}
	color := false
	if fd, ok := f.Out.(interface{ Fd() uintptr }); ok {
		color = isatty.IsTerminal(fd.Fd())
	}
	if err := audit.Text(f.Out, rep, audit.TextOptions{Color: color}); err != nil {
		return err
	}
	if len(fixes) > 0 {
		fmt.Fprintln(f.Out, "\nFixes:")
		for _, x := range fixes {
			fmt.Fprintln(f.Out, "  -", x)
		}
		if !o.DryRun {
			fmt.Fprintf(f.Out, "Score %d -> %d\n", before, rep.Score)
		}
	}
	return nil
}
