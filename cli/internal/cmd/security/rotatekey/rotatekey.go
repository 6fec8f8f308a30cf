// Package rotatekey is `moltbot security rotate-key [--rewrap]`.
package rotatekey

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// Options are the flags of `security rotate-key`.
type Options struct {
	Rewrap bool
}

// NewCmd returns `moltbot security rotate-key`.
func NewCmd(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "rotate-key",
		Short: "Add a new primary secrets key (old keys still decrypt); --rewrap re-seals every secret under it",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(o)
			}
			return run(c.Context(), f, o)
		},
	}
	cmd.Flags().BoolVar(&o.Rewrap, "rewrap", false, "re-encrypt every envelope (config, auth profiles, sealed backups) under the new key inside secretsd")
	return cmd
}

func run(ctx context.Context, f *cmdutil.Factory, o *Options) error {
	cc, err := f.Gateway()
	if err != nil {
		return err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	resp, err := gatewayv1.NewGatewayClient(cc).RotateKey(ctx, &gatewayv1.RotateKeyRequest{Rewrap: o.Rewrap})
	if err != nil {
		return errs.FromStatus(err)
	}
	if f.JSON {
		return f.PrintJSON(resp)
	}
	fmt.Fprintf(f.Out, "new primary key %s\n", resp.GetNewKid())
	if o.Rewrap {
		fmt.Fprintf(f.Out, "rewrapped %d envelope(s) under %s; older keys can now be retired\n", resp.GetRewrapped(), resp.GetNewKid())
	} else {
		fmt.Fprintln(f.Out, "existing secrets stay under their old keys until `moltbot security rotate-key --rewrap`")
	}
	return nil
}
