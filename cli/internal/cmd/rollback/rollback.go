// Package rollback is `moltbot rollback`: open a sealed backup written by
// `security migrate`, a config write or `audit --fix`, and restore the
// original files; `--list` shows the backups.
package rollback

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	"github.com/moltbot/moltbot-secure/cli/internal/offline"
	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	"github.com/moltbot/moltbot-secure/services/errs"
	smigrate "github.com/moltbot/moltbot-secure/services/migrate"
	"github.com/moltbot/moltbot-secure/services/statedir"
)

// Options are the flags of `rollback`.
type Options struct {
	Backup      string
	SecretsAddr string
	List        bool
	Yes         bool
}

// NewCmd returns `moltbot rollback`.
func NewCmd(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "rollback",
		Short: "Restore the config (and auth profiles) from a sealed backup, decrypted through secretsd; --list shows them",
		Long: "Restore from the sealed backups the gateway keeps: the newest by default, `--backup migration` for the\n" +
			"state before the last `security migrate` (the operator's original files), or a timestamped name from\n" +
			"`--list` (time, what wrote it, size). The migration backup and the last 10 are kept. A backup that holds\n" +
			"plain-text secrets is restored only with --yes (they are then on disk in clear until the next migrate).",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(o)
			}
			if o.List {
				return list(c.Context(), f)
			}
			return run(c.Context(), f, o)
		},
	}
	cmd.Flags().StringVar(&o.Backup, "backup", "", "\"migration\" (the state before the last migration) or a backup name from --list; default the latest")
	cmd.Flags().BoolVar(&o.List, "list", false, "list the sealed backups: time, what wrote each, size")
	cmd.Flags().BoolVar(&o.Yes, "yes", false, "restore even when the backup holds plain-text secrets")
	cmd.Flags().StringVar(&o.SecretsAddr, "secretsd", offline.DefaultSecretsdAddr(), "secretsd address for the offline path (gateway down)")
	cmd.MarkFlagsMutuallyExclusive("list", "backup")
	cmd.MarkFlagsMutuallyExclusive("list", "yes")
	return cmd
}

func list(ctx context.Context, f *cmdutil.Factory) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var resp *gatewayv1.ListBackupsResponse
	cc, err := f.Gateway()
	if err == nil {
		resp, err = gatewayv1.NewGatewayClient(cc).ListBackups(ctx, &gatewayv1.ListBackupsRequest{})
	}
	if err != nil && offline.GatewayDown(err) {
		if !f.JSON {
			fmt.Fprintln(f.Err, "gateway not reachable: listing the state dir directly")
		}
		resp, err = listLocal(f)
	}
	if err != nil {
		return errs.FromStatus(err)
	}
	if f.JSON {
		return f.PrintJSON(resp)
	}
	printList(f, resp)
	return nil
}

func listLocal(f *cmdutil.Factory) (*gatewayv1.ListBackupsResponse, error) {
	dir, err := f.StateDir()
	if err != nil {
		return nil, err
	}
	bs, err := smigrate.ListBackups(dir, statedir.ConfigPath(dir))
	if err != nil {
		return nil, err
	}
	return toProto(bs), nil
}

func toProto(bs []smigrate.BackupInfo) *gatewayv1.ListBackupsResponse {
	out := &gatewayv1.ListBackupsResponse{}
	for _, b := range bs {
		out.Backups = append(out.Backups, &gatewayv1.BackupInfo{Name: b.Name, File: b.File, Writer: b.Writer, Size: b.Size, Created: timestamp(b.Created)})
	}
	return out
}

func printList(f *cmdutil.Factory, r *gatewayv1.ListBackupsResponse) {
	if len(r.GetBackups()) == 0 {
		fmt.Fprintln(f.Out, "no backups yet (migrate and every config write make one)")
		return
	}
	tw := tabwriter.NewWriter(f.Out, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME (UTC)\tWRITTEN BY\tSIZE\tFILE\tNAME (--backup)")
	for _, b := range r.GetBackups() {
		name := b.GetName()
		if strings.HasSuffix(name, smigrate.BackupSuffix+"."+smigrate.MigrationName) {
			name += " (--backup migration)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", b.GetCreated().AsTime().UTC().Format("2006-01-02 15:04:05"), b.GetWriter(), b.GetSize(), b.GetFile(), name)
	}
	_ = tw.Flush()
}

func run(ctx context.Context, f *cmdutil.Factory, o *Options) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var resp *gatewayv1.RollbackResponse
	cc, err := f.Gateway()
	if err == nil {
		resp, err = gatewayv1.NewGatewayClient(cc).Rollback(ctx, &gatewayv1.RollbackRequest{Backup: o.Backup, Yes: o.Yes})
	}
	if err != nil && offline.GatewayDown(err) {
		if o.Backup != "" && o.Backup != smigrate.MigrationName {
			return &cmdutil.UsageError{Err: fmt.Errorf("--backup %s needs the gateway; offline rollback restores the latest backup or `--backup migration`", o.Backup)}
		}
		if !f.JSON {
			fmt.Fprintln(f.Err, "gateway not reachable: restoring on the state dir directly (secretsd at "+o.SecretsAddr+")")
		}
		resp, err = local(ctx, f, o)
	}
	if err != nil {
		return errs.FromStatus(err)
	}
	if f.JSON {
		return f.PrintJSON(resp)
	}
	fmt.Fprintf(f.Out, "restored from %s\n", resp.GetRestoredFrom())
	if p := resp.GetPlaintextPaths(); len(p) > 0 {
		fmt.Fprintf(f.Out, "warning: the restored files hold plain-text secrets (%s); run `moltbot security migrate` to encrypt them again\n", strings.Join(p, ", "))
	}
	fmt.Fprintln(f.Out, "apply it with `moltbot gateway restart` (it refuses a config with removed options: see `moltbot config validate`)")
	return nil
}

func local(ctx context.Context, f *cmdutil.Factory, o *Options) (*gatewayv1.RollbackResponse, error) {
	dir, err := f.StateDir()
	if err != nil {
		return nil, err
	}
	sc, err := offline.Secrets(f, o.SecretsAddr)
	if err != nil {
		return nil, err
	}
	defer sc.Close()
	resp := &gatewayv1.RollbackResponse{}
	check := smigrate.PlainRestoreCheck(o.Yes, &resp.PlaintextPaths)
	migration := o.Backup == smigrate.MigrationName
	done, err := smigrate.Rollback(ctx, smigrate.RollbackOptions{StateDir: dir, ConfigPath: statedir.ConfigPath(dir), Decrypter: sc, Migration: migration, Check: check})
	if err != nil {
		return nil, err
	}
	suffix := smigrate.BackupSuffix
	if migration {
		suffix += "." + smigrate.MigrationName
	}
	for i := range done {
		done[i] += suffix
	}
	resp.RestoredFrom = strings.Join(done, ", ")
	return resp, nil
}

func timestamp(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }
