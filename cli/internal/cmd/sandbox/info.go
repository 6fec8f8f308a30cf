package sandbox

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	sandboxv1 "github.com/moltbot/moltbot-secure/proto/sandbox/v1"
)

// InfoOptions are the flags of `sandbox info`.
type InfoOptions struct {
	Client ClientFunc
}

func newCmdInfo(f *cmdutil.Factory, runF func(*InfoOptions) error) *cobra.Command {
	o := &InfoOptions{Client: gatewayClient(f)}
	return &cobra.Command{
		Use:   "info",
		Short: "Show whether sandboxing works: Docker reachable, image present (exit 3 when not)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(o)
			}
			return infoRun(c, f, o)
		},
	}
}

func infoRun(c *cobra.Command, f *cmdutil.Factory, o *InfoOptions) error {
	sb, err := o.Client()
	if err != nil {
		return err
	}
	ctx, cancel := callCtx(c, 30*time.Second)
	defer cancel()
	resp, err := sb.Info(ctx, &sandboxv1.InfoRequest{})
	if err != nil {
		return err
	}
	ok := resp.GetDockerReachable() && resp.GetImagePresent()
	if f.JSON {
		if err := f.PrintJSON(resp); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(f.Out, "docker:     %s\n", yesNo(resp.GetDockerReachable(), "reachable, API "+resp.GetApiVersion(), "NOT reachable"))
		fmt.Fprintf(f.Out, "image:      %s %s\n", resp.GetImage(), yesNo(resp.GetImagePresent(), "present", "MISSING"))
		fmt.Fprintf(f.Out, "containers: %d (%d warm)\n", resp.GetContainers(), resp.GetPoolReady())
		if resp.GetDockerError() != "" {
			fmt.Fprintf(f.Out, "problem:    %s\n", resp.GetDockerError())
		}
	}
	if !ok {
		return &cmdutil.DegradedError{Msg: "sandboxing unavailable: every /exec is refused (the gateway runs none itself)"}
	}
	return nil
}

func yesNo(b bool, yes, no string) string {
	if b {
		return yes
	}
	return no
}
