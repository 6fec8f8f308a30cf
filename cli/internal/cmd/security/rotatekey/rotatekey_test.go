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
	} {
		var got *Options
		cmd := NewCmd(&cmdutil.Factory{}, func(o *Options) error { got = o; return nil })
		cmd.SetArgs(tc.args)
		require.NoError(t, cmd.Execute())
		require.Equal(t, tc.want, *got)
	}
}
