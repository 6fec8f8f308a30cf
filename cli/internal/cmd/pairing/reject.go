package pairing

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	pairingv1 "github.com/moltbot/moltbot-secure/proto/pairing/v1"
)

// RejectOptions are the arguments of `pairing reject`.
type RejectOptions struct {
	Client  ClientFunc
	Channel string
	Code    string
}

func newCmdReject(f *cmdutil.Factory, runF func(*RejectOptions) error) *cobra.Command {
	o := &RejectOptions{Client: gatewayClient(f)}
	return &cobra.Command{
		Use:   "reject <channel> <code>",
		Short: "Drop a pending pairing request",
		Args:  cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			o.Channel, o.Code = args[0], args[1]
			if runF != nil {
				return runF(o)
			}
			return rejectRun(c, f, o)
		},
	}
}

func rejectRun(c *cobra.Command, f *cmdutil.Factory, o *RejectOptions) error {
	pc, err := o.Client()
	if err != nil {
		return err
	}
	ctx, cancel := callCtx(c, 30*time.Second)
	defer cancel()
	r, err := pc.Reject(ctx, &pairingv1.RejectRequest{Channel: o.Channel, Code: o.Code})
	if err != nil {
		return err
	}
	if f.JSON {
		return f.PrintJSON(r)
	}
	fmt.Fprintf(f.Out, "rejected %s sender %s\n", o.Channel, r.GetSenderId())
	return nil
}
