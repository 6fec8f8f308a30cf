package sandbox

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	sandboxv1 "github.com/moltbot/moltbot-secure/proto/sandbox/v1"
)

// PruneOptions are the flags of `sandbox prune`.
type PruneOptions struct {
	Client ClientFunc
	Idle   time.Duration
	MaxAge time.Duration
	// Workspaces also deletes session workspaces idle longer than Idle.
	Workspaces bool
}

func newCmdPrune(f *cmdutil.Factory, runF func(*PruneOptions) error) *cobra.Command {
	o := &PruneOptions{Client: gatewayClient(f)}
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Remove sandbox containers idle or old beyond the limits (default sandboxd's: 24h idle, 7d age); --workspaces also deletes idle session workspaces",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if o.Idle < 0 || o.MaxAge < 0 {
				return &cmdutil.UsageError{Err: errors.New("--idle and --max-age must not be negative")}
			}
			if runF != nil {
				return runF(o)
			}
			return pruneRun(c, f, o)
		},
	}
	cmd.Flags().DurationVar(&o.Idle, "idle", 0, "remove containers idle longer than this (e.g. 1h; default sandboxd's)")
	cmd.Flags().DurationVar(&o.MaxAge, "max-age", 0, "remove containers older than this (e.g. 72h; default sandboxd's)")
	cmd.Flags().BoolVar(&o.Workspaces, "workspaces", false, "also delete session workspaces (their files) idle longer than --idle; agent workspaces are kept")
	return cmd
}

func pruneRun(c *cobra.Command, f *cmdutil.Factory, o *PruneOptions) error {
	sb, err := o.Client()
	if err != nil {
		return err
	}
	req := &sandboxv1.PruneRequest{Workspaces: o.Workspaces}
	if o.Idle > 0 {
		req.Idle = durationpb.New(o.Idle)
	}
	if o.MaxAge > 0 {
		req.MaxAge = durationpb.New(o.MaxAge)
	}
	ctx, cancel := callCtx(c, 2*time.Minute)
	defer cancel()
	resp, err := sb.Prune(ctx, req)
	if err != nil {
		return err
	}
	if f.JSON {
		return f.PrintJSON(resp)
	}
	for _, id := range resp.GetRemoved() {
		fmt.Fprintf(f.Out, "removed %s\n", short(id))
	}
	for _, v := range resp.GetWorkspacesRemoved() {
		fmt.Fprintf(f.Out, "deleted workspace %s\n", v)
	}
	fmt.Fprintf(f.Err, "%d container(s) pruned\n", len(resp.GetRemoved()))
	if o.Workspaces {
		fmt.Fprintf(f.Err, "%d workspace(s) deleted\n", len(resp.GetWorkspacesRemoved()))
	}
	return nil
}
