package secrets

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// ListFilesOptions are the flags of `secrets list-files`.
type ListFilesOptions struct {
	Client func() (gatewayv1.GatewayClient, error)
}

func newCmdListFiles(f *cmdutil.Factory, runF func(*ListFilesOptions) error) *cobra.Command {
	o := &ListFilesOptions{Client: gatewayClient(f)}
	return &cobra.Command{
		Use:   "list-files",
		Short: "List the files ${file:NAME} references may use (names and sizes, never contents)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(o)
			}
			return listFilesRun(c.Context(), f, o)
		},
	}
}

func listFilesRun(ctx context.Context, f *cmdutil.Factory, o *ListFilesOptions) error {
	gc, err := o.Client()
	if err != nil {
		return err
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	r, err := gc.ListSecretFiles(ctx, &gatewayv1.ListSecretFilesRequest{})
	if err != nil {
		return errs.FromStatus(err)
	}
	if f.JSON {
		return f.PrintJSON(r)
	}
	if len(r.GetFiles()) == 0 {
		fmt.Fprintln(f.Err, "no secret files yet (add one with `moltbot secrets put-file NAME --from FILE`)")
		return nil
	}
	tw := tabwriter.NewWriter(f.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSIZE\tMODIFIED\tREFERENCE")
	for _, i := range r.GetFiles() {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", i.GetName(), i.GetSize(), i.GetModifiedAt().AsTime().Local().Format(time.DateTime), i.GetReference())
	}
	return tw.Flush()
}
