package sandbox

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	sandboxv1 "github.com/moltbot/moltbot-secure/proto/sandbox/v1"
)

// ListOptions are the flags of `sandbox list`.
type ListOptions struct {
	Client ClientFunc
	Now    func() time.Time
}

func newCmdList(f *cmdutil.Factory, runF func(*ListOptions) error) *cobra.Command {
	o := &ListOptions{Client: gatewayClient(f), Now: time.Now}
	return &cobra.Command{
		Use:   "list",
		Short: "List sandbox containers: session, state, age, idle time, config hash (--json for everything)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(o)
			}
			return listRun(c, f, o)
		},
	}
}

func listRun(c *cobra.Command, f *cmdutil.Factory, o *ListOptions) error {
	sb, err := o.Client()
	if err != nil {
		return err
	}
	ctx, cancel := callCtx(c, 30*time.Second)
	defer cancel()
	resp, err := sb.List(ctx, &sandboxv1.ListRequest{})
	if err != nil {
		return err
	}
	if f.JSON {
		return f.PrintJSON(resp)
	}
	now := o.Now()
	tw := tabwriter.NewWriter(f.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CONTAINER\tSESSION\tPROFILE\tSTATE\tAGE\tIDLE\tHASH\tIMAGE\tPATH")
	for _, ci := range resp.GetContainers() {
		session := ci.GetSessionKey()
		if session == "" {
			session = "(warm pool)"
		}
		path := "docker-exec"
		if ci.GetAgent() {
			path = "agent"
		}
		// sandboxd labels each container with its profile; older ones
		// (and the warm pool) are hardened.
		profile := ci.GetLabels()["moltbot.sandbox.profile"]
		if profile == "" {
			profile = "hardened"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", short(ci.GetId()), session, profile, ci.GetState(),
			ago(now, ci.GetCreatedAt().AsTime()), ago(now, ci.GetLastUsedAt().AsTime()), ci.GetConfigHash(), ci.GetImage(), path)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(f.Err, "%d container(s), %d warm in the pool\n", len(resp.GetContainers()), resp.GetPoolSize())
	return nil
}
