// Package rotatekey is `moltbot security rotate-key [--rewrap | --retire KID]`.
package rotatekey

import (
	"context"
	"errors"
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
	Retire string
}

// NewCmd returns `moltbot security rotate-key`.
func NewCmd(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "rotate-key",
		Short: "Add a new primary secrets key (old keys still decrypt); --rewrap re-seals every secret under it; --retire KID drops an old key",
		Long: `Without flags: a new primary key; existing secrets stay under their old keys.
--rewrap: also re-seal every envelope (config, auth profiles, sealed backups, the security log's key) under it.
--retire KID: drop an old key from the ring. Refused while anything is still sealed under KID
(the refusal names what; run --rewrap first). secretsd keeps the ring as it was in keys/secrets.key.before-retire.`,
		Example: "  moltbot security rotate-key --rewrap\n  moltbot security rotate-key --retire k1",
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if c.Flags().Changed("retire") && (o.Rewrap || o.Retire == "") {
				return &cmdutil.UsageError{Err: errors.New("--retire KID: name one key (see `moltbot status --all`), and not with --rewrap: rotate and rewrap first, then retire")}
			}
			if runF != nil {
				return runF(o)
			}
			return run(c.Context(), f, o)
		},
	}
	cmd.Flags().BoolVar(&o.Rewrap, "rewrap", false, "re-encrypt every envelope (config, auth profiles, sealed backups) under the new key inside secretsd")
	cmd.Flags().StringVar(&o.Retire, "retire", "", "drop the old key KID (refused while anything is sealed under it); no new key is made")
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
	if o.Retire != "" {
		return retire(ctx, f, gatewayv1.NewGatewayClient(cc), o.Retire)
	}
	resp, err := gatewayv1.NewGatewayClient(cc).RotateKey(ctx, &gatewayv1.RotateKeyRequest{Rewrap: o.Rewrap})
	if err != nil {
		return errs.FromStatus(err)
	}
	if f.JSON {
		return f.PrintJSON(resp)
	}
	fmt.Fprintf(f.Out, "new primary key %s\n", resp.GetNewKid())
	if o.Rewrap {
		fmt.Fprintf(f.Out, "rewrapped %d envelope(s) under %s; older keys can now be retired: moltbot security rotate-key --retire <kid>\n", resp.GetRewrapped(), resp.GetNewKid())
	} else {
		fmt.Fprintln(f.Out, "existing secrets stay under their old keys until `moltbot security rotate-key --rewrap`")
	}
	return nil
}

func retire(ctx context.Context, f *cmdutil.Factory, g gatewayv1.GatewayClient, kid string) error {
	resp, err := g.RetireKey(ctx, &gatewayv1.RetireKeyRequest{Kid: kid})
	if err != nil {
		return err
	}
	if f.JSON {
		return f.PrintJSON(resp)
	}
	fmt.Fprintf(f.Out, "retired key %s (%d envelope(s) checked, none under it)\n", resp.GetRetiredKid(), resp.GetChecked())
	return nil
}
