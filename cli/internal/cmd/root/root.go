// Package root assembles the moltbot command tree.
package root

import (
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
	pf.StringVar(&f.StateDirFlag, "state-dir", "", "state directory (default $MOLTBOT_STATE_DIR or ~/.moltbot)")
	pf.StringVar(&f.GatewayAddr, "gateway", f.GatewayAddr, "gateway address host:port")
	pf.BoolVar(&f.JSON, "json", false, "print JSON")
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return &cmdutil.UsageError{Err: err} })
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
		// security verbs
		),
	)
	return cmd
}
