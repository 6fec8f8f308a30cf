// Package root assembles the moltbot command tree.
package root

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/moltbot/moltbot-secure/cli/internal/cmd/certs"
	configcmd "github.com/moltbot/moltbot-secure/cli/internal/cmd/config"
	"github.com/moltbot/moltbot-secure/cli/internal/cmd/devices"
	"github.com/moltbot/moltbot-secure/cli/internal/cmd/doctor"
	"github.com/moltbot/moltbot-secure/cli/internal/cmd/gateway"
	"github.com/moltbot/moltbot-secure/cli/internal/cmd/message"
	"github.com/moltbot/moltbot-secure/cli/internal/cmd/pairing"
	"github.com/moltbot/moltbot-secure/cli/internal/cmd/rollback"
	"github.com/moltbot/moltbot-secure/cli/internal/cmd/sandbox"
	"github.com/moltbot/moltbot-secure/cli/internal/cmd/secrets"
	"github.com/moltbot/moltbot-secure/cli/internal/cmd/security"
	"github.com/moltbot/moltbot-secure/cli/internal/cmd/security/auditcmd"
	"github.com/moltbot/moltbot-secure/cli/internal/cmd/security/keycmd"
	"github.com/moltbot/moltbot-secure/cli/internal/cmd/security/migrate"
	"github.com/moltbot/moltbot-secure/cli/internal/cmd/security/rotatekey"
	"github.com/moltbot/moltbot-secure/cli/internal/cmd/security/seclogcmd"
	"github.com/moltbot/moltbot-secure/cli/internal/cmd/sessions"
	"github.com/moltbot/moltbot-secure/cli/internal/cmd/status"
	"github.com/moltbot/moltbot-secure/cli/internal/cmd/token"
	"github.com/moltbot/moltbot-secure/cli/internal/cmd/ui"
	"github.com/moltbot/moltbot-secure/cli/internal/cmd/version"
	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
)

// New returns the root command bound to f.
func New(f *cmdutil.Factory, ver string) *cobra.Command {
	cmd := &cobra.Command{
		Use:           "moltbot",
		Short:         "Drive the moltbot gateway and its services",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.StateDirFlag, "state-dir", "", "state directory (default $MOLTBOT_STATE_DIR, else ./.moltbot up to the repo root, else the dir ~/.moltbot/stack.json names, else ~/.moltbot)")
	pf.StringVar(&f.GatewayAddr, "gateway", f.GatewayAddr, "gateway address host:port (default $MOLTBOT_GATEWAY, else the one ~/.moltbot/stack.json names, else "+cmdutil.DefaultGatewayAddr+")")
	pf.BoolVar(&f.JSON, "json", false, "print JSON")
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &cmdutil.UsageError{Err: fmt.Errorf("%s: %w (see `%s --help`)", c.CommandPath(), err, c.CommandPath())}
	})
	// One line per command; `security` takes its verbs from their packages.
	cmd.AddCommand(
		certs.NewCmd(f),
		token.NewCmd(f),
		status.NewCmd(f, nil),
		version.NewCmd(f, ver),
		gateway.NewCmd(f),
		doctor.NewCmd(f, nil),
		sandbox.NewCmd(f),
		pairing.NewCmd(f),
		devices.NewCmd(f),
		ui.NewCmd(f),
		message.NewCmd(f),
		sessions.NewCmd(f),
		secrets.NewCmd(f),
		configcmd.NewCmd(f),
		rollback.NewCmd(f, nil),
		security.NewCmd(
			seclogcmd.NewCmd(f, nil),
			auditcmd.NewCmd(f, nil),
			migrate.NewCmd(f, nil),
			rotatekey.NewCmd(f, nil),
			keycmd.NewCmd(f),
		),
		newCmdCompletion(),
	)
	cmd.SetHelpCommand(newCmdHelp())
	strictUsage(cmd)
	return cmd
}

// newCmdHelp replaces cobra's help command, which answers an unknown topic
// with the root's help and exit 0.
func newCmdHelp() *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		RunE: func(c *cobra.Command, args []string) error {
			target, rest, err := c.Root().Find(args)
			if err != nil || len(rest) > 0 {
				return &cmdutil.UsageError{Err: fmt.Errorf("unknown help topic %q (see `moltbot --help`)", strings.Join(args, " "))}
			}
			return target.Help()
		},
	}
}

// strictUsage makes every usage mistake a UsageError (exit 2): wrong
// argument counts, and an unknown command or subcommand, which cobra would
// otherwise answer with help and exit 0 (a group) or a plain error (root).
func strictUsage(c *cobra.Command) {
	for _, sub := range c.Commands() {
		strictUsage(sub)
	}
	if c.HasSubCommands() && !c.Runnable() {
		c.Args = cobra.ArbitraryArgs
		c.RunE = func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return c.Help()
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
			if s := c.SuggestionsFor(args[0]); len(s) > 0 {
				msg += "; did you mean " + strings.Join(s, " or ") + "?"
			}
			return &cmdutil.UsageError{Err: errors.New(msg + " (see `" + c.CommandPath() + " --help`)")}
		}
		return
	}
	if check := c.Args; check != nil {
		c.Args = func(c *cobra.Command, args []string) error {
			if err := check(c, args); err != nil {
				return &cmdutil.UsageError{Err: fmt.Errorf("%s: %w (see `%s --help`)", c.CommandPath(), err, c.CommandPath())}
			}
			return nil
		}
	}
}

// newCmdCompletion is `moltbot completion bash|zsh|fish`.
func newCmdCompletion() *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print the shell completion script",
		Long: `Print the completion script for your shell. Load it now or install it:
  bash:  source <(moltbot completion bash)        or  moltbot completion bash > /etc/bash_completion.d/moltbot
  zsh:   source <(moltbot completion zsh)         or  moltbot completion zsh > "${fpath[1]}/_moltbot"
  fish:  moltbot completion fish | source         or  moltbot completion fish > ~/.config/fish/completions/moltbot.fish`,
		ValidArgs: []string{"bash", "zsh", "fish"},
		Args:      cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs),
		RunE: func(c *cobra.Command, args []string) error {
			root, out := c.Root(), c.OutOrStdout()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(out, true)
			case "zsh":
				return root.GenZshCompletion(out)
			default:
				return root.GenFishCompletion(out, true)
			}
		},
	}
}
