package migrate

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
)

func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want Options
	}{
		{nil, Options{SecretsAddr: "127.0.0.1:18790"}},
		{[]string{"--dry-run"}, Options{DryRun: true, SecretsAddr: "127.0.0.1:18790"}},
		{[]string{"--secretsd", "secretsd:18790"}, Options{SecretsAddr: "secretsd:18790"}},
	} {
		t.Setenv("MOLTBOT_SECRETSD_ADDR", "")
		var got *Options
		cmd := NewCmd(&cmdutil.Factory{Out: &bytes.Buffer{}, Err: &bytes.Buffer{}}, func(o *Options) error { got = o; return nil })
		cmd.SetArgs(tc.args)
		require.NoError(t, cmd.Execute())
		require.Equal(t, tc.want, *got)
	}
	cmd := NewCmd(&cmdutil.Factory{}, func(*Options) error { return nil })
	cmd.SetArgs([]string{"extra"})
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	require.Error(t, cmd.Execute())
}
