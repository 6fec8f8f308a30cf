// Package sandbox is `moltbot sandbox ...`: the sandbox containers, through
// the gateway's admin proxy to sandboxd (the admin certificate is needed).
package sandbox

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	sandboxv1 "github.com/moltbot/moltbot-secure/proto/sandbox/v1"
)

// ClientFunc returns the Sandbox client; tests replace it.
type ClientFunc func() (sandboxv1.SandboxClient, error)

// NewCmd returns `moltbot sandbox`.
func NewCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "sandbox", Short: "Inspect and manage the sandbox containers every session runs its commands in"}
	cmd.AddCommand(
		newCmdList(f, nil),
		newCmdExplain(f, nil),
		newCmdRecreate(f, nil),
		newCmdPrune(f, nil),
		newCmdInfo(f, nil),
	)
	return cmd
}

// gatewayClient dials the gateway lazily (never for --help or a flag error).
func gatewayClient(f *cmdutil.Factory) ClientFunc {
	return func() (sandboxv1.SandboxClient, error) {
		cc, err := f.Gateway()
		if err != nil {
			return nil, err
		}
		return sandboxv1.NewSandboxClient(cc), nil
	}
}

func callCtx(c *cobra.Command, d time.Duration) (context.Context, context.CancelFunc) {
	ctx := context.Background()
	if c != nil && c.Context() != nil {
		ctx = c.Context()
	}
	return context.WithTimeout(ctx, d)
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
