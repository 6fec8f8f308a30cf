// Package migrate is `moltbot security migrate`: turn an upstream state dir
// into one this build accepts, through the gateway, or offline on the state
// dir (with secretsd) when the gateway is down, which it is while the
// config still has what the gateway refuses to start with.
package migrate

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	"github.com/moltbot/moltbot-secure/cli/internal/offline"
	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/errs"
	smigrate "github.com/moltbot/moltbot-secure/services/migrate"
	"github.com/moltbot/moltbot-secure/services/statedir"
)

// Options are the flags of `security migrate`.
type Options struct {
	DryRun      bool
	SecretsAddr string
	// From is an upstream state dir on this machine to import into the
	// running stack (streamed through the gateway).
	From string
}

// NewCmd returns `moltbot security migrate`.
func NewCmd(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Encrypt every plain secret, rewrite removed options, fix permissions (sealed backup; `moltbot rollback` undoes it)",
		Long: "Migrate a state dir written for upstream moltbot: back up the config and auth profiles (the backup is\n" +
			"sealed under the secrets key as a whole file, since a plain backup would undo encryption at rest;\n" +
			"`moltbot rollback` opens it), encrypt every plain secret through secretsd, fix permissions, rewrite\n" +
			"removed options (dm.policy \"open\" -> \"pairing\", dangerous flags), report what it cannot fix,\n" +
			"validate and write atomically. A second run changes nothing. When the gateway is down it runs on\n" +
			"the state dir directly, with secretsd (--secretsd) as the admin identity.\n\n" +
			"--from DIR imports an upstream state dir (~/.moltbot, ~/.clawdbot) from this machine into the running\n" +
			"stack: moltbot.json (JSON5), its .backup, agents/*/agent/auth-profiles.json and credentials/*.json are\n" +
			"streamed to the gateway, migrated there and the originals kept as the sealed migration backup\n" +
			"(`moltbot rollback --backup migration --yes` restores them). --state-dir X without --from migrates X\n" +
			"offline only when X is a gateway state dir.",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(o)
			}
			return run(c.Context(), f, o)
		},
	}
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "print the plan; write nothing")
	cmd.Flags().StringVar(&o.From, "from", "", "an upstream state dir on this machine to import into the running stack")
	cmd.Flags().StringVar(&o.SecretsAddr, "secretsd", offline.DefaultSecretsdAddr(), "secretsd address for the offline path (gateway down)")
	return cmd
}

func run(ctx context.Context, f *cmdutil.Factory, o *Options) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if o.From != "" {
		return runFrom(ctx, f, o)
	}
	// --state-dir X names the state to act on: X itself, offline, and only
	// when it is a gateway state dir (never the running stack's instead).
	if f.StateDirFlag != "" && !isBundleOnly(f) {
		dir, err := f.StateDir()
		if err != nil {
			return err
		}
		if !statedir.IsGatewayState(dir) {
			return &cmdutil.UsageError{Err: fmt.Errorf("--state-dir %s is not a gateway state dir (no %s): to import an upstream state dir into the running stack, run `moltbot security migrate --from %s`", dir, statedir.GatewayMarker, dir)}
		}
		if !f.JSON {
			fmt.Fprintf(f.Err, "migrating the gateway state dir %s offline (secretsd at %s)\n", dir, o.SecretsAddr)
		}
		resp, err := local(ctx, f, o)
		if err != nil {
			return errs.FromStatus(err)
		}
		return output(f, resp, o.DryRun)
	}
	if !f.JSON {
		fmt.Fprintf(f.Err, "migrating the running stack's state at %s\n", f.Addr())
	}
	resp, err := viaGateway(ctx, f, o)
	if err != nil && offline.GatewayDown(err) {
		if !f.JSON {
			fmt.Fprintln(f.Err, "gateway not reachable: migrating the state dir directly (secretsd at "+o.SecretsAddr+")")
		}
		resp, err = local(ctx, f, o)
	}
	if err != nil {
		return errs.FromStatus(err)
	}
	return output(f, resp, o.DryRun)
}

// isBundleOnly: --state-dir names the CLI's bundle (pki, no config), the
// usual way to reach the running stack; the stack's state is meant.
func isBundleOnly(f *cmdutil.Factory) bool {
	dir, err := f.StateDir()
	if err != nil {
		return false
	}
	for _, n := range []string{config.FileName, "clawdbot.json"} {
		if _, err := os.Lstat(filepath.Join(dir, n)); err == nil {
			return false
		}
	}
	_, err = os.Stat(filepath.Join(dir, "pki", "ca.pem"))
	return err == nil
}

func output(f *cmdutil.Factory, resp *gatewayv1.MigrateResponse, dry bool) error {
	if f.JSON {
		return f.PrintJSON(resp)
	}
	print(f, resp, dry)
	return nil
}

func viaGateway(ctx context.Context, f *cmdutil.Factory, o *Options) (*gatewayv1.MigrateResponse, error) {
	cc, err := f.Gateway()
	if err != nil {
		return nil, err
	}
	return gatewayv1.NewGatewayClient(cc).Migrate(ctx, &gatewayv1.MigrateRequest{DryRun: o.DryRun})
}

func local(ctx context.Context, f *cmdutil.Factory, o *Options) (*gatewayv1.MigrateResponse, error) {
	dir, err := f.StateDir()
	if err != nil {
		return nil, err
	}
	opts := smigrate.Options{StateDir: dir, ConfigPath: statedir.ConfigPath(dir), DryRun: o.DryRun}
	if !o.DryRun {
		sc, err := offline.Secrets(f, o.SecretsAddr)
		if err != nil {
			return nil, err
		}
		defer sc.Close()
		opts.Encrypter = sc
		opts.Decrypter = sc // a sealed weak token is reported on every run
	}
	rep, err := smigrate.Run(ctx, opts)
	if err != nil {
		return nil, err
	}
	resp := &gatewayv1.MigrateResponse{Actions: rep.Actions, Changed: rep.Changed}
	for _, w := range rep.Written {
		if w == opts.ConfigPath+smigrate.BackupSuffix {
			resp.BackupPath = w
		}
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "credentials", "*-allowFrom.json")); len(m) > 0 {
		resp.Actions = append(resp.Actions, "credentials/*-pairing.json, *-allowFrom.json: not imported offline; run `moltbot security migrate` again once the gateway is up")
	}
	for _, p := range rep.Unfixed {
		resp.Unfixed = append(resp.Unfixed, &gatewayv1.Problem{Path: p.Path, Message: p.Message, Fix: p.Fix, Severity: string(p.Severity), File: p.File, Line: int32(p.Line)})
	}
	return resp, nil
}

func print(f *cmdutil.Factory, r *gatewayv1.MigrateResponse, dry bool) {
	switch {
	case !r.GetChanged():
		fmt.Fprintln(f.Out, "nothing to migrate: the state dir is already migrated")
	case dry:
		fmt.Fprintln(f.Out, "plan (dry run, nothing written):")
	default:
		fmt.Fprintln(f.Out, "migrated:")
	}
	for _, a := range r.GetActions() {
		fmt.Fprintln(f.Out, "  -", a)
	}
	// The rewrite fixes the removed options; what is left for the operator
	// is listed with its fix (a weak token, for one).
	var left []*gatewayv1.Problem
	for _, p := range r.GetUnfixed() {
		if p.GetSeverity() == string(config.SevError) && !fixedByMigrate(p) {
			left = append(left, p)
		}
	}
	if len(left) > 0 {
		fmt.Fprintln(f.Out, "not fixed (do these yourself):")
		for _, p := range left {
			fmt.Fprintf(f.Out, "  - %s: %s (fix: %s)\n", p.GetPath(), p.GetMessage(), p.GetFix())
		}
	}
	if r.GetBackupPath() != "" {
		how := "`moltbot rollback` opens it and restores them"
		if strings.HasSuffix(r.GetBackupPath(), smigrate.BackupSuffix+"."+smigrate.MigrationName) {
			how = "`moltbot rollback --backup migration --yes` restores them (--yes: they hold plain-text secrets)"
		}
		fmt.Fprintf(f.Out, "backup: %s holds the original files sealed under the secrets key (a plain backup would undo encryption at rest); %s\n", r.GetBackupPath(), how)
	} else if dry && r.GetChanged() {
		fmt.Fprintln(f.Out, "the backup will be sealed under the secrets key; `moltbot rollback` opens it")
	}
}

// fixedByMigrate: problems the rewrite step removes (reported before it ran).
func fixedByMigrate(p *gatewayv1.Problem) bool {
	return p.GetFix() != "" && (strings.Contains(p.GetFix(), config.MigrateFix) || strings.Contains(p.GetPath(), "controlUi."))
}
