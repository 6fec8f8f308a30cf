package sandbox

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	sandboxv1 "github.com/moltbot/moltbot-secure/proto/sandbox/v1"
)

// ExplainOptions are the flags of `sandbox explain`.
type ExplainOptions struct {
	Client  ClientFunc
	Session string
	AgentID string
}

func newCmdExplain(f *cmdutil.Factory, runF func(*ExplainOptions) error) *cobra.Command {
	o := &ExplainOptions{Client: gatewayClient(f)}
	cmd := &cobra.Command{
		Use:   "explain",
		Short: "Show the effective sandbox policy for a session and why (mode, scope, main or not, every flag)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if strings.ContainsAny(o.Session, "\x00\n") {
				return &cmdutil.UsageError{Err: fmt.Errorf("--session: a session key has no newline or NUL")}
			}
			if runF != nil {
				return runF(o)
			}
			return explainRun(c, f, o)
		},
	}
	cmd.Flags().StringVar(&o.Session, "session", "", "session key, e.g. agent:main:main or agent:main:telegram:group:-100123 (default the main session)")
	cmd.Flags().StringVar(&o.AgentID, "agent", "", "agent id (default: taken from the session key)")
	return cmd
}

// verdict is the one-line summary: the profile and its reason.
func verdict(resp *sandboxv1.ExplainResponse) string {
	why := ""
	for _, it := range resp.GetItems() {
		if it.GetName() == "profile" {
			why = it.GetWhy()
		}
	}
	name := "hardened"
	if resp.GetProfile() == sandboxv1.Profile_PROFILE_MAIN {
		name = "main"
	}
	if !resp.GetSandboxed() {
		// An older sandboxd; this gateway never runs a command itself.
		return "profile " + name + " (sandboxd predates profiles: upgrade it)"
	}
	if why == "" {
		return "sandboxed, profile " + name
	}
	return "sandboxed, profile " + name + ": " + why
}

func explainRun(c *cobra.Command, f *cmdutil.Factory, o *ExplainOptions) error {
	sb, err := o.Client()
	if err != nil {
		return err
	}
	ctx, cancel := callCtx(c, 30*time.Second)
	defer cancel()
	resp, err := sb.Explain(ctx, &sandboxv1.ExplainRequest{SessionKey: o.Session, AgentId: o.AgentID})
	if err != nil {
		return err
	}
	if f.JSON {
		return f.PrintJSON(resp)
	}
	fmt.Fprintf(f.Out, "%s\nconfig hash: %s\n\n", verdict(resp), resp.GetConfigHash())
	tw := tabwriter.NewWriter(f.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SETTING\tVALUE\tWHY")
	for _, it := range resp.GetItems() {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", it.GetName(), it.GetValue(), it.GetWhy())
	}
	return tw.Flush()
}
