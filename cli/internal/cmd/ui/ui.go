// Package ui is `moltbot ui`: where the gateway serves the Control UI, and
// how to get a browser approved.
package ui

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
)

// NewCmd returns `moltbot ui`.
func NewCmd(f *cmdutil.Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "ui",
		Short: "Print the Control UI's URL (open it in a browser, log in with the gateway token)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cc, err := f.Gateway()
			if err != nil {
				return err
			}
			ctx := c.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			r, err := gatewayv1.NewGatewayClient(cc).Status(ctx, &gatewayv1.StatusRequest{All: true})
			if err != nil {
				return err
			}
			u := r.GetControlUiUrl()
			if f.JSON {
				return f.PrintJSON(map[string]string{"url": u})
			}
			if u == "" {
				return fmt.Errorf("the gateway does not serve the Control UI (started with --ui-addr off?)")
			}
			fmt.Fprintln(f.Out, u)
			fmt.Fprintln(f.Err, "Log in with the gateway token; the page shows a device fingerprint.\n"+
				"Approve it with: moltbot devices approve <fingerprint>   (remote: an HTTPS proxy listed in gateway.controlUi.allowedOrigins)")
			return nil
		},
	}
}
