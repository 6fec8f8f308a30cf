package pairing

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	pairingv1 "github.com/moltbot/moltbot-secure/proto/pairing/v1"
)

// ApproveOptions are the arguments and flags of `pairing approve`.
type ApproveOptions struct {
	Client   ClientFunc
	Channel  string
	Code     string
	NoNotify bool
	// Owner also adds the sender to channels.<channel>.owner: their DMs
	// then fold into the main session (owner only at the gateway).
	Owner bool
}

func newCmdApprove(f *cmdutil.Factory, runF func(*ApproveOptions) error) *cobra.Command {
	o := &ApproveOptions{Client: gatewayClient(f)}
	cmd := &cobra.Command{
		Use:   "approve <channel> <code>",
		Short: "Let the sender behind a pairing code talk to the agent",
		Example: "  moltbot pairing approve telegram ABCD2345\n" +
			"  moltbot pairing approve local K7PQ9XZM --no-notify\n" +
			"  moltbot pairing approve telegram ABCD2345 --owner   # it is you: your DMs become the main session",
		Args: cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			o.Channel, o.Code = args[0], args[1]
			if runF != nil {
				return runF(o)
			}
			return approveRun(c, f, o)
		},
	}
	cmd.Flags().BoolVar(&o.NoNotify, "no-notify", false, "do not send the sender a confirmation")
	cmd.Flags().BoolVar(&o.Owner, "owner", false, "the sender is you: also add them to channels.<channel>.owner (their DMs fold into the main session, with your workspace)")
	return cmd
}

func approveRun(c *cobra.Command, f *cmdutil.Factory, o *ApproveOptions) error {
	pc, err := o.Client()
	if err != nil {
		return err
	}
	ctx, cancel := callCtx(c, 30*time.Second)
	defer cancel()
	if o.NoNotify {
		ctx = metadata.AppendToOutgoingContext(ctx, notifyHeader, "false")
	}
	var hdr metadata.MD
	r, err := pc.Approve(ctx, &pairingv1.ApproveRequest{Channel: o.Channel, Code: o.Code, Owner: o.Owner}, grpc.Header(&hdr))
	if err != nil {
		return err
	}
	notified := strings.Join(hdr.Get(notifiedHeader), "")
	if f.JSON {
		return f.PrintJSON(map[string]any{"channel": o.Channel, "sender_id": r.GetSenderId(), "meta": r.GetMeta(), "notified": notified, "owner": o.Owner})
	}
	fmt.Fprintf(f.Out, "approved %s sender %s\n", o.Channel, r.GetSenderId())
	if o.Owner {
		fmt.Fprintf(f.Out, "added %s to channels.%s.owner: their DMs are the main session\n", r.GetSenderId(), o.Channel)
	}
	switch {
	case notified == "sent":
		fmt.Fprintln(f.Err, "the sender was sent a confirmation")
	case strings.HasPrefix(notified, "failed"):
		fmt.Fprintf(f.Err, "warning: the confirmation to the sender was not sent (%s)\n", strings.TrimPrefix(notified, "failed: "))
	}
	return nil
}
