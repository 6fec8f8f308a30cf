// Package gateway is `moltbot gateway ...`.
package gateway

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
)

// NewCmd returns `moltbot gateway`.
func NewCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "gateway", Short: "Control the running gateway"}
	cmd.AddCommand(&cobra.Command{
		Use:   "restart",
		Short: "Re-read, validate and apply the config without restarting the process (an invalid config is refused and the running one stays)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cc, err := f.Gateway()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			resp, err := gatewayv1.NewGatewayClient(cc).Reload(ctx, &gatewayv1.ReloadRequest{})
			if err != nil {
				return err
			}
			if f.JSON {
				if err := f.PrintJSON(resp); err != nil {
					return err
				}
			} else {
				for _, ch := range resp.GetChanges() {
					fmt.Fprintf(f.Out, "applied: %s\n", ch)
				}
				for _, p := range resp.GetProblems() {
					fmt.Fprintf(f.Out, "%s: %s: %s (fix: %s)\n", p.GetSeverity(), p.GetPath(), p.GetMessage(), p.GetFix())
				}
			}
			if !resp.GetApplied() {
				return &cmdutil.DegradedError{Msg: "config refused; the gateway keeps running with the previous config"}
			}
			if !f.JSON {
				fmt.Fprintln(f.Out, "gateway reloaded")
			}
			return nil
		},
	})
	return cmd
}
