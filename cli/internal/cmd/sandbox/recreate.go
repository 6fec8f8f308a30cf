package sandbox

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	sandboxv1 "github.com/moltbot/moltbot-secure/proto/sandbox/v1"
)

// RecreateOptions are the flags of `sandbox recreate`.
type RecreateOptions struct {
	Client  ClientFunc
	All     bool
	Session string
	// ResetWorkspace also deletes the session's workspace.
	ResetWorkspace bool
}

func newCmdRecreate(f *cmdutil.Factory, runF func(*RecreateOptions) error) *cobra.Command {
	o := &RecreateOptions{Client: gatewayClient(f)}
	cmd := &cobra.Command{
		Use:   "recreate (--all | --session KEY) [--reset-workspace]",
		Short: "Remove sandbox containers so the next command gets a fresh one; workspaces are kept unless --reset-workspace",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if o.All == (o.Session != "") {
				return &cmdutil.UsageError{Err: errors.New("give exactly one of --all and --session KEY")}
			}
			if runF != nil {
				return runF(o)
			}
			return recreateRun(c, f, o)
		},
	}
	cmd.Flags().BoolVar(&o.All, "all", false, "every sandbox container (the warm pool refills)")
	cmd.Flags().StringVar(&o.Session, "session", "", "the container of this session key")
	cmd.Flags().BoolVar(&o.ResetWorkspace, "reset-workspace", false, "also delete the session's workspace (every session workspace with --all), so it starts clean; agent workspaces are kept")
	return cmd
}

func recreateRun(c *cobra.Command, f *cmdutil.Factory, o *RecreateOptions) error {
	sb, err := o.Client()
	if err != nil {
		return err
	}
	ctx, cancel := callCtx(c, 2*time.Minute)
	defer cancel()
	resp, err := sb.Recreate(ctx, &sandboxv1.RecreateRequest{All: o.All, SessionKey: o.Session, ResetWorkspace: o.ResetWorkspace})
	if err != nil {
		return err
	}
	if f.JSON {
		return f.PrintJSON(resp)
	}
	for _, v := range resp.GetWorkspacesRemoved() {
		fmt.Fprintf(f.Out, "deleted workspace %s\n", v)
	}
	_, err = fmt.Fprintf(f.Out, "removed %d container(s); the next command creates a fresh one\n", resp.GetRemoved())
	return err
}
