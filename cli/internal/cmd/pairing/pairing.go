// Package pairing is `moltbot pairing`: the owner's side of DM pairing,
// through the gateway's admin proxy to pairingd (needs the admin cert).
package pairing

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	pairingv1 "github.com/moltbot/moltbot-secure/proto/pairing/v1"
)

// Headers of the gateway's pairing proxy (gateway/internal/pairingproxy).
const (
	notifyHeader   = "x-moltbot-notify"
	notifiedHeader = "x-moltbot-notified"
)

// ClientFunc returns the pairing client; built lazily so --help never dials.
type ClientFunc func() (pairingv1.PairingClient, error)

func gatewayClient(f *cmdutil.Factory) ClientFunc {
	return func() (pairingv1.PairingClient, error) {
		cc, err := f.Gateway()
		if err != nil {
			return nil, err
		}
		return pairingv1.NewPairingClient(cc), nil
	}
}

// NewCmd returns `moltbot pairing` with its verbs.
func NewCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pairing",
		Short: "Approve, reject and revoke the people who may DM the bot",
		Long: "An unknown sender's DM gets a pairing code instead of an answer; approve the code to let\n" +
			"them talk to the agent. These commands are owner only: they need the owner's bundle (pki/cli.pem, cli-key.pem, cli.token).",
	}
	cmd.AddCommand(
		newCmdList(f, nil),
		newCmdApprove(f, nil),
		newCmdReject(f, nil),
		newCmdRevoke(f, nil),
		newCmdWatch(f, nil),
	)
	return cmd
}

func callCtx(c *cobra.Command, d time.Duration) (context.Context, context.CancelFunc) {
	ctx := c.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}
