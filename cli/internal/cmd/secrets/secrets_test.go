package secrets

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	"github.com/moltbot/moltbot-secure/services/config"
)

func factory() *cmdutil.Factory {
	return &cmdutil.Factory{Out: &bytes.Buffer{}, Err: &bytes.Buffer{}, GatewayAddr: "127.0.0.1:1"}
}

func TestPutFileFlags(t *testing.T) {
	tests := []struct {
		args []string
		want PutFileOptions
		err  bool
	}{
		{[]string{"openai.key"}, PutFileOptions{Name: "openai.key", From: "-"}, false},
		{[]string{"openai.key", "--from", "./k"}, PutFileOptions{Name: "openai.key", From: "./k"}, false},
		{[]string{}, PutFileOptions{}, true},
		{[]string{"a", "b"}, PutFileOptions{}, true},
	}
	for _, tc := range tests {
		var got *PutFileOptions
		cmd := newCmdPutFile(factory(), func(o *PutFileOptions) error { got = o; return nil })
		cmd.SetArgs(tc.args)
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetErr(&bytes.Buffer{})
		err := cmd.Execute()
		if tc.err {
			require.Error(t, err, tc.args)
			continue
		}
		require.NoError(t, err)
		require.Equal(t, tc.want.Name, got.Name)
		require.Equal(t, tc.want.From, got.From)
	}
	var ran bool
	cmd := newCmdListFiles(factory(), func(*ListFilesOptions) error { ran = true; return nil })
	cmd.SetArgs(nil)
	require.NoError(t, cmd.Execute())
	require.True(t, ran)
}

// The content is read whole or refused: never truncated, never empty.
func TestReadContent(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	require.NoError(t, os.WriteFile(small, []byte("sk-1\n"), 0o600))
	big := filepath.Join(dir, "big")
	require.NoError(t, os.WriteFile(big, bytes.Repeat([]byte("a"), config.MaxValueBytes+1), 0o600))
	tests := []struct {
		name  string
		o     PutFileOptions
		want  string
		err   string
		usage bool
	}{
		{"file", PutFileOptions{Name: "k", From: small}, "sk-1\n", "", false},
		{"stdin", PutFileOptions{Name: "k", From: "-", Stdin: strings.NewReader("sk-2")}, "sk-2", "", false},
		{"at the limit", PutFileOptions{Name: "k", From: "-", Stdin: strings.NewReader(strings.Repeat("a", config.MaxValueBytes))}, strings.Repeat("a", config.MaxValueBytes), "", false},
		{"file over the limit", PutFileOptions{Name: "k", From: big}, "", "secrets put-file k: content of " + big + " is over 1 MiB; the limit is 1 MiB", false},
		{"stdin over the limit", PutFileOptions{Name: "k", From: "-", Stdin: strings.NewReader(strings.Repeat("a", 2<<20))}, "", "the limit is 1 MiB", false},
		{"missing file", PutFileOptions{Name: "k", From: filepath.Join(dir, "nope")}, "", "--from:", true},
		{"empty", PutFileOptions{Name: "k", From: "-", Stdin: strings.NewReader("")}, "", "is empty", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := readContent(&tt.o)
			if tt.err == "" {
				require.NoError(t, err)
				require.Equal(t, tt.want, string(b))
				return
			}
			require.ErrorContains(t, err, tt.err)
			require.Nil(t, b)
			want := cmdutil.ExitError
			if tt.usage {
				want = cmdutil.ExitUsage
			}
			require.Equal(t, want, cmdutil.ExitCode(err))
		})
	}
}
