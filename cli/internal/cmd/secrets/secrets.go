// Package secrets is `moltbot secrets`: the files ${file:NAME} config
// references read, written into the secret-files volume through the gateway
// and secretsd (the gateway mounts the volume read-only).
package secrets

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
)

// NewCmd returns `moltbot secrets` with its verbs.
func NewCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secrets",
		Short: "Manage the files that ${file:NAME} config references read",
	}
	cmd.AddCommand(newCmdPutFile(f, nil), newCmdListFiles(f, nil))
	return cmd
}

// gatewayClient is the lazily dialled gateway (flag errors never dial).
func gatewayClient(f *cmdutil.Factory) func() (gatewayv1.GatewayClient, error) {
	return func() (gatewayv1.GatewayClient, error) {
		cc, err := f.Gateway()
		if err != nil {
			return nil, err
		}
		return gatewayv1.NewGatewayClient(cc), nil
	}
}

func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx == nil {
		ctx = context.Background()
	}
	return context.WithTimeout(ctx, 30*time.Second)
}
