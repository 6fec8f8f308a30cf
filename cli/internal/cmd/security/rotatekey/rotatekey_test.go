package rotatekey

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
)

func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want Options
	}{
		{nil, Options{}},
		{[]string{"--rewrap"}, Options{Rewrap: true}},
		{[]string{"--retire", "k1"}, Options{Retire: "k1"}},
	} {
		var got *Options
		cmd := NewCmd(&cmdutil.Factory{}, func(o *Options) error { got = o; return nil })
		cmd.SetArgs(tc.args)
		require.NoError(t, cmd.Execute())
		require.Equal(t, tc.want, *got)
	}
}

func TestRetireUsage(t *testing.T) {
	for _, args := range [][]string{{"--retire", ""}, {"--retire", "k1", "--rewrap"}} {
		cmd := NewCmd(&cmdutil.Factory{}, func(*Options) error { t.Fatal("ran"); return nil })
		cmd.SetArgs(args)
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		err := cmd.Execute()
		require.Equal(t, cmdutil.ExitUsage, cmdutil.ExitCode(err), "%v: %v", args, err)
	}
}
