package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestOwnerAndMainProfile covers channels.<ch>.owner and
// agents.defaults.sandbox.main: a wildcard owner or a shared network
// namespace is an error naming the field.
func TestOwnerAndMainProfile(t *testing.T) {
	bad := []struct{ name, in, path, want string }{
		{"star", `{channels: {telegram: {owner: ["*"]}}}`, "channels.telegram.owner.0", "wildcard"},
		{"glob", `{channels: {telegram: {owner: ["42", "4?"]}}}`, "channels.telegram.owner.1", "wildcard"},
		{"empty", `{channels: {local: {owner: [" "]}}}`, "channels.local.owner.0", "empty owner id"},
		{"account", `{channels: {telegram: {accounts: {w: {owner: ["*"]}}}}}`, "channels.telegram.accounts.w.owner.0", "wildcard"},
		{"not a list", `{channels: {telegram: {owner: "42"}}}`, "channels.telegram.owner", "want an array"},
		{"host net", `{agents: {defaults: {sandbox: {main: {network: "host"}}}}}`, "agents.defaults.sandbox.main.network", "defeats isolation"},
		{"container net", `{agents: {defaults: {sandbox: {main: {network: "container:gw"}}}}}`, "agents.defaults.sandbox.main.network", "defeats isolation"},
		{"bad name", `{agents: {defaults: {sandbox: {main: {network: "a b"}}}}}`, "agents.defaults.sandbox.main.network", "not a Docker network name"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("m.json", []byte(tc.in))
			require.NoError(t, err)
			p := problemAt(c.Validate(), tc.path)
			require.NotNil(t, p, "%v", c.Validate())
			require.Equal(t, SevError, p.Severity)
			require.Contains(t, p.Message, tc.want)
		})
	}
	good := `{channels: {telegram: {owner: ["42", 77]}, local: {owner: ["me"]}}, agents: {defaults: {sandbox: {main: {network: "none"}}}}}`
	c, err := Parse("m.json", []byte(good))
	require.NoError(t, err)
	require.Empty(t, Errors(c.Validate()))
	v := c.View()
	require.Equal(t, []string{"42", "77"}, v.Channels["telegram"].Owner)
	require.Equal(t, []string{"me"}, v.Channels["local"].Owner)
	require.Equal(t, "none", v.Agents.Sandbox.MainNetwork)
}
