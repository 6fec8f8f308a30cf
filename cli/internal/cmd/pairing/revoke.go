package pairing

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	pairingv1 "github.com/moltbot/moltbot-secure/proto/pairing/v1"
)

// RevokeOptions are the arguments of `pairing revoke`.
type RevokeOptions struct {
	Client  ClientFunc
	Channel string
	Sender  string
}

func newCmdRevoke(f *cmdutil.Factory, runF func(*RevokeOptions) error) *cobra.Command {
	o := &RevokeOptions{Client: gatewayClient(f)}
	return &cobra.Command{
		Use:   "revoke <channel> <sender>",
		Short: "Remove an approved sender: their DMs get a pairing code again",
		Args:  cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			o.Channel, o.Sender = args[0], args[1]
			if runF != nil {
				return runF(o)
			}
			return revokeRun(c, f, o)
		},
	}
}

func revokeRun(c *cobra.Command, f *cmdutil.Factory, o *RevokeOptions) error {
	pc, err := o.Client()
	if err != nil {
		return err
	}
	ctx, cancel := callCtx(c, 30*time.Second)
	defer cancel()
	r, err := pc.Revoke(ctx, &pairingv1.RevokeRequest{Channel: o.Channel, SenderId: o.Sender})
	if err != nil {
		return err
	}
	if f.JSON {
		return f.PrintJSON(r)
	}
	fmt.Fprintf(f.Out, "revoked %s sender %s\n", o.Channel, o.Sender)
	return nil
}
