package sandbox

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

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
		Short: "List sandbox containers (session, state, age, idle time, config hash) and workspaces (usage against the quota); --json for everything",
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
	if len(resp.GetWorkspaces()) == 0 {
		return nil
	}
	fmt.Fprintln(f.Out)
	tw = tabwriter.NewWriter(f.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKSPACE\tKIND\tSESSION\tUSAGE\tQUOTA\tIDLE\tIN USE")
	for _, w := range resp.GetWorkspaces() {
		owner := w.GetSessionKey()
		if w.GetKind() == "agent-workspace" {
			owner = "agent " + w.GetAgentId()
		} else if w.GetKey() == "" {
			owner = "(warm pool)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%v\n", w.GetVolume(), w.GetKind(), owner, usage(w), mib(w.GetQuotaBytes()),
			idleSince(now, w.GetLastUsedAt()), w.GetInUse())
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(f.Err, "%d workspace(s); free one with `moltbot sandbox recreate --session KEY --reset-workspace` or idle ones with `moltbot sandbox prune --workspaces`\n", len(resp.GetWorkspaces()))
	return nil
}

// idleSince is ago for an optional timestamp ("-" when never used).
func idleSince(now time.Time, t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	return ago(now, t.AsTime())
}

func mib(n int64) string { return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20)) }

// usage is a workspace's last measured usage, flagged past the quota.
func usage(w *sandboxv1.WorkspaceInfo) string {
	switch {
	case !w.GetMeasured():
		return "?"
	case w.GetUsageBytes() < 0:
		return "unmeasurable (over quota)"
	case w.GetQuotaBytes() > 0 && w.GetUsageBytes() > w.GetQuotaBytes():
		return mib(w.GetUsageBytes()) + " (over quota)"
	}
	return mib(w.GetUsageBytes())
}
