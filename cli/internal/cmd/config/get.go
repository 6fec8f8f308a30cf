package config

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// GetOptions are the flags of `config get`.
type GetOptions struct {
	Path   string
	Reveal bool
}

func newCmdGet(f *cmdutil.Factory, runF func(*GetOptions) error) *cobra.Command {
	o := &GetOptions{}
	cmd := &cobra.Command{
		Use:   "get [PATH]",
		Short: "Print a config value (secrets show as <encrypted>; --reveal decrypts, owner only)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.Path = args[0]
			}
			if runF != nil {
				return runF(o)
			}
			return getRun(c.Context(), f, o)
		},
	}
	cmd.Flags().BoolVar(&o.Reveal, "reveal", false, "decrypt secrets (owner only: needs pki/cli.pem, cli-key.pem and cli.token)")
	return cmd
}

func getRun(ctx context.Context, f *cmdutil.Factory, o *GetOptions) error {
	cc, err := f.Gateway()
	if err != nil {
		return err
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	g := gatewayv1.NewGatewayClient(cc)
	var value string
	if o.Reveal {
		r, rerr := g.RevealConfig(ctx, &gatewayv1.RevealConfigRequest{Path: o.Path})
		value, err = r.GetValueJson(), rerr
	} else {
		r, gerr := g.GetConfig(ctx, &gatewayv1.GetConfigRequest{Path: o.Path})
		value, err = r.GetValueJson(), gerr
	}
	if err != nil {
		return errs.FromStatus(err)
	}
	if f.JSON {
		return f.PrintJSON(map[string]any{"path": o.Path, "value": json.RawMessage(value)})
	}
	var s string
	if json.Unmarshal([]byte(value), &s) == nil {
		fmt.Fprintln(f.Out, s)
		return nil
	}
	fmt.Fprintln(f.Out, value)
	return nil
}

func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx == nil {
		ctx = context.Background()
	}
	return context.WithTimeout(ctx, 30*time.Second)
}
