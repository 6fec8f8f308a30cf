package sessions

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
)

func TestListFlags(t *testing.T) {
	f := &cmdutil.Factory{Out: &bytes.Buffer{}, Err: &bytes.Buffer{}}
	ran := false
	cmd := newCmdList(f, func(*ListOptions) error { ran = true; return nil })
	cmd.SetArgs(nil)
	require.NoError(t, cmd.Execute())
	require.True(t, ran)
	cmd = newCmdList(f, func(*ListOptions) error { return nil })
	cmd.SetArgs([]string{"extra"})
	cmd.SetErr(&bytes.Buffer{})
	require.Error(t, cmd.Execute())
}
