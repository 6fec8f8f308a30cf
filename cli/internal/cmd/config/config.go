// Package config is `moltbot config get|set|validate`.
package config

import (
	"github.com/spf13/cobra"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
)

// NewCmd returns `moltbot config` with its verbs.
func NewCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Read, change and validate moltbot.json (secrets are encrypted through secretsd)"}
	cmd.AddCommand(newCmdGet(f, nil), newCmdSet(f, nil), newCmdValidate(f, nil))
	return cmd
}
