// Package token is `moltbot token ...`.
package token

import (
	"crypto/rand"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	"github.com/moltbot/moltbot-secure/services/auth"
)

// NewCmd returns `moltbot token`.
func NewCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Gateway tokens"}
	cmd.AddCommand(newCmdGenerate(f))
	return cmd
}

func newCmdGenerate(f *cmdutil.Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "generate",
		Short: "Print a new gateway token that passes the token rule (>= 32 chars, >= 20 distinct)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			tok, err := auth.GenerateToken(rand.Reader)
			if err != nil {
				return err
			}
			if f.JSON {
				return f.PrintJSON(map[string]string{"token": tok})
			}
			_, err = fmt.Fprintln(f.Out, tok)
			return err
		},
	}
}
