// Package version is `moltbot version`.
package version

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
)

// NewCmd returns `moltbot version`.
func NewCmd(f *cmdutil.Factory, ver string) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the CLI version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if f.JSON {
				return f.PrintJSON(map[string]string{"version": ver, "go": runtime.Version()})
			}
			_, err := fmt.Fprintf(f.Out, "moltbot %s (%s)\n", ver, runtime.Version())
			return err
		},
	}
}
