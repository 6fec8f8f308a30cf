// Package rollback is `moltbot rollback`: open the sealed backup written by
// `security migrate` (or the last config set) and restore the original files.
package rollback

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

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
}

// NewCmd returns `moltbot rollback`.
func NewCmd(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "rollback",
		Short: "Restore the config (and auth profiles) from the sealed backup, decrypted through secretsd",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(o)
			}
			return run(c.Context(), f, o)
		},
	}
	cmd.Flags().StringVar(&o.Backup, "backup", "", "a timestamped backup name (moltbot.json.backup.<time>); default the latest")
	cmd.Flags().StringVar(&o.SecretsAddr, "secretsd", offline.DefaultSecretsdAddr(), "secretsd address for the offline path (gateway down)")
	return cmd
}

func run(ctx context.Context, f *cmdutil.Factory, o *Options) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var from string
	cc, err := f.Gateway()
	if err == nil {
		var resp *gatewayv1.RollbackResponse
		resp, err = gatewayv1.NewGatewayClient(cc).Rollback(ctx, &gatewayv1.RollbackRequest{Backup: o.Backup})
		from = resp.GetRestoredFrom()
	}
	if err != nil && offline.GatewayDown(err) {
		if o.Backup != "" {
			return &cmdutil.UsageError{Err: fmt.Errorf("--backup needs the gateway; offline rollback restores the latest backup")}
		}
		if !f.JSON {
			fmt.Fprintln(f.Err, "gateway not reachable: restoring on the state dir directly (secretsd at "+o.SecretsAddr+")")
		}
		from, err = local(ctx, f, o)
	}
	if err != nil {
		return errs.FromStatus(err)
	}
	if f.JSON {
		return f.PrintJSON(&gatewayv1.RollbackResponse{RestoredFrom: from})
	}
	fmt.Fprintf(f.Out, "restored from %s\nrestart the gateway to load it (it refuses a config with removed options: see `moltbot config validate`)\n", from)
	return nil
}

func local(ctx context.Context, f *cmdutil.Factory, o *Options) (string, error) {
	dir, err := f.StateDir()
	if err != nil {
		return "", err
	}
	sc, err := offline.Secrets(f, o.SecretsAddr)
	if err != nil {
		return "", err
	}
	defer sc.Close()
	done, err := smigrate.Rollback(ctx, smigrate.RollbackOptions{StateDir: dir, ConfigPath: statedir.ConfigPath(dir), Decrypter: sc})
	if err != nil {
		return "", err
	}
	for i := range done {
		done[i] += smigrate.BackupSuffix
	}
	return strings.Join(done, ", "), nil
}
