// Package auditcmd is `moltbot security audit`.
package auditcmd

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	"github.com/moltbot/moltbot-secure/cli/internal/offline"
	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	secretsv1 "github.com/moltbot/moltbot-secure/proto/secrets/v1"
	"github.com/moltbot/moltbot-secure/services/atomicfile"
	"github.com/moltbot/moltbot-secure/services/audit"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/envelope"
	"github.com/moltbot/moltbot-secure/services/migrate"
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
			if o.SARIF && f.JSON {
				return &cmdutil.UsageError{Err: errors.New("--json and --sarif are two output formats: pick one")}
			}
			if c.Flags().Changed("min-score") && (o.MinScore < 0 || o.MinScore > 100) {
				return &cmdutil.UsageError{Err: fmt.Errorf("--min-score %d: the score is 0-100", o.MinScore)}
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
		cc, cerr := f.Gateway()
		if cerr != nil {
			fmt.Fprintf(f.Err, "notice: cannot call the gateway (%v); auditing the state dir offline\n", cerr)
			o.Offline = true
		} else {
			rep, fixes, before, err = online(ctx, cc, o)
			if status.Code(err) == codes.Unavailable {
				fmt.Fprintln(f.Err, "notice: the gateway is not reachable; auditing the state dir offline (no key status, no live probes)")
				o.Offline = true
			} else if err != nil {
				return err
			}
		}
	}
	if o.Offline {
		if o.Deep {
			fmt.Fprintln(f.Err, "notice: --deep needs the running stack; skipped offline")
		}
		rep, fixes, before, err = runOffline(f, o)
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

func online(ctx context.Context, cc grpc.ClientConnInterface, o *Options) (audit.Report, []string, int, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	g := gatewayv1.NewGatewayClient(cc)
	var resp *gatewayv1.AuditResponse
	var err error
	if o.Fix {
		// Fixing is its own owner-only method (the role table).
		var r *gatewayv1.AuditFixResponse
		r, err = g.AuditFix(ctx, &gatewayv1.AuditFixRequest{Deep: o.Deep, DryRun: o.DryRun})
		resp = r.GetReport()
	} else {
		resp, err = g.Audit(ctx, &gatewayv1.AuditRequest{Deep: o.Deep})
	}
	if err != nil {
		return audit.Report{}, nil, 0, err
	}
	rep := audit.Report{Findings: audit.FromProto(resp.GetFindings()), Score: int(resp.GetScore()), Band: resp.GetBand()}
	return rep, resp.GetFixes(), int(resp.GetScoreBeforeFix()), nil
}

// runOffline audits the state dir in this process (the gateway is down, or
// --offline). --fix tightens permissions itself and, through secretsd,
// also generates a token and edits the config (with a sealed backup).
func runOffline(f *cmdutil.Factory, o *Options) (audit.Report, []string, int, error) {
	dir, err := f.StateDir()
	if err != nil {
		return audit.Report{}, nil, 0, err
	}
	// A host dir holding only the CLI bundle is not the stack's state.
	if err := offline.StackDown(dir); err != nil {
		return audit.Report{}, nil, 0, err
	}
	// secretsd, when reachable, gives the key status and opens an encrypted
	// token to measure it; --fix also needs it to seal.
	var sec offlineSecrets
	sec.c, sec.err = offline.Secrets(f, offline.DefaultSecretsdAddr())
	if sec.c != nil {
		defer sec.c.Close()
	}
	ctx := context.Background()
	in := sec.enrich(ctx, Input(dir))
	rep := audit.Run(in)
	before := rep.Score
	var fixes []string
	if o.Fix {
		for _, a := range audit.Plan(rep, in) {
			if o.DryRun {
				fixes = append(fixes, "would: "+a.Description)
				continue
			}
			in = sec.enrich(ctx, Input(dir)) // each fix sees the file as the previous one left it
			msg, err := applyOffline(ctx, sec, in, a)
			if err != nil {
				fixes = append(fixes, fmt.Sprintf("not applied: %s: %v", a.Description, err))
				continue
			}
			fixes = append(fixes, msg)
		}
		if !o.DryRun && len(fixes) > 0 {
			rep = audit.Run(sec.enrich(ctx, Input(dir)))
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
		in.Token, in.TokenSource = t, audit.EnvTokenSource
	}
	for _, e := range tlsutil.Expiries(filepath.Join(dir, "pki")) {
		in.Certs = append(in.Certs, audit.CertInfo{Name: e.Name, NotAfter: e.NotAfter, Err: e.Err})
	}
	return in
}

// applyOffline runs one fix without the gateway. Permissions need nothing
// else; a new token and config edits need secretsd (the token is sealed
// before it touches the disk, and so is the backup of the old config),
// reached directly as the admin identity, as `security migrate` does when
// the gateway cannot start.
func applyOffline(ctx context.Context, sec offlineSecrets, in audit.Input, a audit.FixAction) (string, error) {
	if a.Kind == audit.KindChmod {
		return a.Description, audit.Chmod(filepath.Dir(in.ConfigPath), a.Path, a.Mode)
	}
	if sec.err != nil {
		return "", fmt.Errorf("needs secretsd (it seals the backup and encrypts a new token): %w", sec.err)
	}
	if in.Config == nil {
		return "", errors.New("the config does not parse: fix it first (`moltbot config validate`)")
	}
	orig, err := os.ReadFile(in.ConfigPath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	tree := config.Clone(in.Config)
	msg := a.Description
	switch a.Kind {
	case audit.KindGenerateToken:
		tok, err := auth.GenerateToken(rand.Reader)
		if err != nil {
			return "", err
		}
		envText, err := sec.c.Encrypt(ctx, []byte(tok), a.Path)
		if err != nil {
			return "", err
		}
		env, err := config.EnvelopeValue(envText)
		if err != nil {
			return "", err
		}
		if err := config.SetIn(tree, strings.Split(a.Path, "."), env); err != nil {
			return "", err
		}
		msg = fmt.Sprintf("generated a new gateway token at %s (encrypted); start the gateway, then give clients the new token (`moltbot config get %s --reveal`)", a.Path, a.Path)
	default:
		tree, _ = audit.ApplyConfigFixes(tree, []audit.FixAction{a})
	}
	c := config.New(in.ConfigPath, tree)
	if bad := config.Errors(c.Validate()); len(bad) > 0 {
		// Another problem (e.g. dm.policy open) is migrate's to fix; the
		// edit itself is still safe, so only refuse when this fix broke it.
		before := config.Errors(config.New(in.ConfigPath, in.Config).Validate())
		if len(bad) > len(before) {
			return "", fmt.Errorf("the result would not validate: %s", bad[0].String())
		}
	}
	data, err := c.Marshal()
	if err != nil {
		return "", err
	}
	if orig != nil {
		if _, err := migrate.WriteSealedBackup(migrate.WithWriter(ctx, migrate.WriterAuditFix), sec.c, filepath.Dir(in.ConfigPath), in.ConfigPath, orig, time.Now()); err != nil {
			return "", err
		}
	}
	if err := atomicfile.WriteFile(in.ConfigPath, data, 0o600); err != nil {
		return "", err
	}
	return msg, nil
}

type offlineSecrets struct {
	c   *offline.Client
	err error
}

// enrich adds what only secretsd knows: the key ring, and the strength of
// a token stored encrypted (decrypted here, never printed).
func (s offlineSecrets) enrich(ctx context.Context, in audit.Input) audit.Input {
	if s.c == nil {
		return in
	}
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if st, err := s.c.C.Status(cctx, &secretsv1.StatusRequest{}); err == nil {
		ki := &audit.KeyInfo{Primary: st.GetPrimaryKid()}
		for _, k := range st.GetKeys() {
			ki.IDs = append(ki.IDs, k.GetKid())
			if k.GetPrimary() {
				ki.CreatedAt = k.GetCreatedAt().AsTime()
			}
		}
		in.KeyStatus = ki
	}
	if in.Token == "" && in.Config != nil {
		if gw, ok := in.Config["gateway"].(map[string]any); ok {
			if au, ok := gw["auth"].(map[string]any); ok && envelope.IsEnvelope(au["token"]) {
				if e, err := envelope.DecodeValue(au["token"]); err == nil {
					if text, err := e.Encode(); err == nil {
						if pt, err := s.c.Decrypt(cctx, text, "gateway.auth.token"); err == nil {
							in.Token, in.TokenSource = string(pt), in.ConfigPath+": gateway.auth.token"
						}
					}
				}
			}
		}
	}
	return in
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
