// Package security is the `moltbot security` parent; each verb lives in
// its own package (security/migrate, security/audit, ...) and root wires them.
package security

import "github.com/spf13/cobra"

// NewCmd returns `moltbot security` with its verbs.
func NewCmd(verbs ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{Use: "security", Short: "Security audit, migration, key rotation and the security log"}
	cmd.AddCommand(verbs...)
	return cmd
}
