// Package sessions is `moltbot sessions`.
package sessions

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
)

// NewCmd returns `moltbot sessions` with its verbs.
func NewCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "sessions", Short: "Show the agent's conversation sessions"}
	cmd.AddCommand(newCmdList(f, nil))
	return cmd
}

// ListOptions are the flags of `sessions list`.
type ListOptions struct {
	Client func() (gatewayv1.GatewayClient, error)
}

func newCmdList(f *cmdutil.Factory, runF func(*ListOptions) error) *cobra.Command {
	o := &ListOptions{Client: func() (gatewayv1.GatewayClient, error) {
		cc, err := f.Gateway()
		if err != nil {
			return nil, err
		}
		return gatewayv1.NewGatewayClient(cc), nil
	}}
	return &cobra.Command{
		Use:   "list",
		Short: "List sessions (key, channel, main, sandboxed, last activity)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(o)
			}
			return listRun(c.Context(), f, o)
		},
	}
}

func listRun(ctx context.Context, f *cmdutil.Factory, o *ListOptions) error {
	gc, err := o.Client()
	if err != nil {
		return err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	r, err := gc.ListSessions(ctx, &gatewayv1.ListSessionsRequest{})
	if err != nil {
		return err
	}
	if f.JSON {
		return f.PrintJSON(r)
	}
	if len(r.GetSessions()) == 0 {
		fmt.Fprintln(f.Err, "no sessions yet")
		return nil
	}
	tw := tabwriter.NewWriter(f.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tCHANNEL\tMAIN\tSANDBOXED\tLAST ACTIVE")
	for _, s := range r.GetSessions() {
		fmt.Fprintf(tw, "%s\t%s\t%t\t%t\t%s\n", s.GetKey(), s.GetChannel(), s.GetMain(), s.GetSandboxed(),
			s.GetLastActiveAt().AsTime().Local().Format(time.DateTime))
	}
	return tw.Flush()
}
