// Package message is `moltbot message`: inject a message on the local
// channel, as if a user had sent it, and print the bot's replies.
package message

import (
	"github.com/spf13/cobra"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
)

// NewCmd returns `moltbot message` with its verbs.
func NewCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "message", Short: "Send messages through the gateway's local channel"}
	cmd.AddCommand(newCmdSend(f, nil))
	return cmd
}
