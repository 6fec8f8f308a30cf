// Package devices is `moltbot devices`: the owner's side of the Control
// UI's device identity (list, approve, reject, revoke), through the gateway.
package devices

import (
	"cmp"
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
)

// ClientFunc returns the gateway client; built lazily so --help never dials.
type ClientFunc func() (gatewayv1.GatewayClient, error)

func gatewayClient(f *cmdutil.Factory) ClientFunc {
	return func() (gatewayv1.GatewayClient, error) {
		cc, err := f.Gateway()
		if err != nil {
			return nil, err
		}
		return gatewayv1.NewGatewayClient(cc), nil
	}
}

// NewCmd returns `moltbot devices` with its verbs.
func NewCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "devices",
		Short: "Approve, reject and revoke the browsers that use the Control UI",
		Long: "A browser that logs in to the Control UI with the gateway token registers a device key and\n" +
			"waits, pending, until the owner approves it here. Compare the fingerprint with the one the page shows.\n" +
			"These commands are owner only: they need the owner's bundle (pki/cli.pem, cli-key.pem, cli.token).",
	}
	c := gatewayClient(f)
	cmd.AddCommand(newCmdList(f, c), newCmdApprove(f, c), newCmdDecide(f, c, "reject"), newCmdDecide(f, c, "revoke"))
	return cmd
}

func callCtx(c *cobra.Command) (context.Context, context.CancelFunc) {
	ctx := c.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	return context.WithTimeout(ctx, 30*time.Second)
}

func when(t interface{ AsTime() time.Time }, set bool) string {
	if !set {
		return "-"
	}
	return t.AsTime().Local().Format(time.DateTime)
}

func newCmdList(f *cmdutil.Factory, client ClientFunc) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List pending and approved devices with their fingerprints",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			gc, err := client()
			if err != nil {
				return err
			}
			ctx, cancel := callCtx(c)
			defer cancel()
			r, err := gc.ListDevices(ctx, &gatewayv1.ListDevicesRequest{})
			if err != nil {
				return err
			}
			if f.JSON {
				return f.PrintJSON(r)
			}
			if r.GetDeviceAuthDisabled() {
				fmt.Fprintln(f.Err, "WARNING: gateway.controlUi.dangerouslyDisableDeviceAuth is true: pending devices get in as the owner (`moltbot security audit --fix` removes it)")
			}
			if len(r.GetDevices()) == 0 {
				fmt.Fprintln(f.Err, "no devices (open the Control UI: `moltbot ui`)")
				return nil
			}
			tw := tabwriter.NewWriter(f.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "FINGERPRINT\tSTATE\tROLE\tNAME\tORIGIN\tREGISTERED\tLAST SEEN\tSESSIONS")
			for _, d := range r.GetDevices() {
				role := d.GetRole()
				if role == "" {
					role = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", d.GetFingerprint(), d.GetState(), role, cmp.Or(d.GetName(), "-"),
					cmp.Or(d.GetOrigin(), "-"), when(d.GetCreatedAt(), d.CreatedAt != nil), when(d.GetLastSeen(), d.LastSeen != nil), d.GetSessions())
			}
			return tw.Flush()
		},
	}
}

func newCmdApprove(f *cmdutil.Factory, client ClientFunc) *cobra.Command {
	var role string
	cmd := &cobra.Command{
		Use:   "approve <fingerprint>",
		Short: "Let a pending device in (as the owner, or --role client)",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			gc, err := client()
			if err != nil {
				return err
			}
			ctx, cancel := callCtx(c)
			defer cancel()
			r, err := gc.ApproveDevice(ctx, &gatewayv1.ApproveDeviceRequest{Fingerprint: args[0], Role: role})
			if err != nil {
				return err
			}
			if f.JSON {
				return f.PrintJSON(r)
			}
			fmt.Fprintf(f.Out, "approved device %s as %s\n", r.GetDevice().GetFingerprint(), r.GetDevice().GetRole())
			return nil
		},
	}
	cmd.Flags().StringVar(&role, "role", "owner", "owner or client (a client reads views and sends messages, never changes state)")
	return cmd
}

func newCmdDecide(f *cmdutil.Factory, client ClientFunc, verb string) *cobra.Command {
	short := "Drop a pending device"
	if verb == "revoke" {
		short = "Remove an approved device and end its sessions at once"
	}
	return &cobra.Command{
		Use:   verb + " <fingerprint>",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			gc, err := client()
			if err != nil {
				return err
			}
			ctx, cancel := callCtx(c)
			defer cancel()
			var (
				msg interface{ GetDevice() *gatewayv1.Device }
				out any
			)
			if verb == "reject" {
				r, err := gc.RejectDevice(ctx, &gatewayv1.RejectDeviceRequest{Fingerprint: args[0]})
				if err != nil {
					return err
				}
				msg, out = r, r
			} else {
				r, err := gc.RevokeDevice(ctx, &gatewayv1.RevokeDeviceRequest{Fingerprint: args[0]})
				if err != nil {
					return err
				}
				msg, out = r, r
				defer fmt.Fprintf(f.Err, "%d session(s) ended\n", r.GetSessionsEnded())
			}
			if f.JSON {
				return f.PrintJSON(out)
			}
			fmt.Fprintf(f.Out, "%sed device %s\n", verb[:len(verb)-1], msg.GetDevice().GetFingerprint())
			return nil
		},
	}
}
