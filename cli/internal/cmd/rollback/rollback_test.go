package rollback

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
)

func TestFlags(t *testing.T) {
	t.Setenv("MOLTBOT_SECRETSD_ADDR", "")
	for _, tc := range []struct {
		args []string
		want Options
	}{
		{nil, Options{SecretsAddr: "127.0.0.1:18790"}},
		{[]string{"--backup", "moltbot.json.backup.2026"}, Options{Backup: "moltbot.json.backup.2026", SecretsAddr: "127.0.0.1:18790"}},
	} {
		var got *Options
		cmd := NewCmd(&cmdutil.Factory{}, func(o *Options) error { got = o; return nil })
		cmd.SetArgs(tc.args)
		require.NoError(t, cmd.Execute())
		require.Equal(t, tc.want, *got)
	}
}
