package message

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
)

func TestSendFlags(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		wantErr string
		want    SendOptions
	}{
		{args: []string{"--channel", "local", "--from", "alice", "hi"}, want: SendOptions{Channel: "local", From: "alice", Text: "hi"}},
		{args: []string{"--from", "bob", "--group", "team", "hello", "all"}, want: SendOptions{Channel: "local", From: "bob", Group: "team", Text: "hello all"}},
		{args: []string{"hi"}, wantErr: "--from"},
		{args: []string{"--from", "a"}, wantErr: "arg"},
	} {
		var got *SendOptions
		f := &cmdutil.Factory{Out: &bytes.Buffer{}, Err: &bytes.Buffer{}}
		cmd := newCmdSend(f, func(o *SendOptions) error { got = o; return nil })
		cmd.SetArgs(tc.args)
		cmd.SetErr(&bytes.Buffer{})
		cmd.SetOut(&bytes.Buffer{})
		err := cmd.Execute()
		if tc.wantErr != "" {
			require.ErrorContains(t, err, tc.wantErr)
			continue
		}
		require.NoError(t, err)
		require.Equal(t, tc.want.Channel, got.Channel)
		require.Equal(t, tc.want.From, got.From)
		require.Equal(t, tc.want.Group, got.Group)
		require.Equal(t, tc.want.Text, got.Text)
	}
}
