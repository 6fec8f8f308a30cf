package pairing

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	pairingv1 "github.com/moltbot/moltbot-secure/proto/pairing/v1"
)

// ListOptions are the flags of `pairing list`.
type ListOptions struct {
	Client  ClientFunc
	Channel string
	Allowed bool
}

func newCmdList(f *cmdutil.Factory, runF func(*ListOptions) error) *cobra.Command {
	o := &ListOptions{Client: gatewayClient(f)}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List pending pairing requests (--allowed: the approved senders)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(o)
			}
			return listRun(c, f, o)
		},
	}
	cmd.Flags().StringVar(&o.Channel, "channel", "", "only this channel (default: all)")
	cmd.Flags().BoolVar(&o.Allowed, "allowed", false, "list the approved senders instead")
	return cmd
}

func listRun(c *cobra.Command, f *cmdutil.Factory, o *ListOptions) error {
	pc, err := o.Client()
	if err != nil {
		return err
	}
	ctx, cancel := callCtx(c, 15*time.Second)
	defer cancel()
	if o.Allowed {
		r, err := pc.ListAllowed(ctx, &pairingv1.ListAllowedRequest{Channel: o.Channel})
		if err != nil {
			return err
		}
		if f.JSON {
			return f.PrintJSON(r)
		}
		if len(r.GetSenders()) == 0 {
			fmt.Fprintln(f.Err, "no approved senders")
			return nil
		}
		tw := tabwriter.NewWriter(f.Out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CHANNEL\tSENDER\tAPPROVED\tLET THROUGH")
		for _, s := range r.GetSenders() {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.GetChannel(), s.GetSenderId(), s.GetApprovedAt().AsTime().Local().Format(time.DateTime), letThrough(s))
		}
		return tw.Flush()
	}
	r, err := pc.List(ctx, &pairingv1.ListRequest{Channel: o.Channel})
	if err != nil {
		return err
	}
	if f.JSON {
		return f.PrintJSON(r)
	}
	if len(r.GetRequests()) == 0 {
		fmt.Fprintln(f.Err, "no pending pairing requests")
	} else {
		tw := tabwriter.NewWriter(f.Out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CHANNEL\tCODE\tSENDER\tNAME\tEXPIRES")
		for _, q := range r.GetRequests() {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", q.GetChannel(), q.GetCode(), q.GetSenderId(), label(q.GetMeta()),
				time.Until(q.GetExpiresAt().AsTime()).Round(time.Minute))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for _, ch := range r.GetFullChannels() {
		fmt.Fprintf(f.Err, "%s: the pending queue is full; new senders are told to try later (approve or reject some)\n", ch)
	}
	return nil
}

// letThrough says whether the channel's active DM policy lets an approved
// sender through: under dm.policy allowlist an approval alone does not.
func letThrough(s *pairingv1.AllowedSender) string {
	switch {
	case s.LetThrough == nil:
		return "unknown (the gateway did not say)"
	case s.GetLetThrough():
		return "yes"
	case s.GetBlockedBecause() != "":
		return "no (" + s.GetBlockedBecause() + ")"
	}
	return "no"
}

// label is the sender's display name from the request's (untrusted) meta.
func label(m map[string]string) string {
	for _, k := range []string{"username", "name", "first_name"} {
		if v := m[k]; v != "" {
			return v
		}
	}
	return "-"
}
