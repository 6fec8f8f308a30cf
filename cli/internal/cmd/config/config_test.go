package config

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	"github.com/moltbot/moltbot-secure/services/config"
)

func factory() *cmdutil.Factory {
	return &cmdutil.Factory{Out: &bytes.Buffer{}, Err: &bytes.Buffer{}, GatewayAddr: "127.0.0.1:1"}
}

func TestGetFlags(t *testing.T) {
	tests := []struct {
		args []string
		want GetOptions
		err  bool
	}{
		{[]string{"gateway.auth.token"}, GetOptions{Path: "gateway.auth.token"}, false},
		{[]string{"gateway.auth.token", "--reveal"}, GetOptions{Path: "gateway.auth.token", Reveal: true}, false},
		{nil, GetOptions{}, false},
		{[]string{"a", "b"}, GetOptions{}, true},
	}
	for _, tc := range tests {
		var got *GetOptions
		cmd := newCmdGet(factory(), func(o *GetOptions) error { got = o; return nil })
		cmd.SetArgs(tc.args)
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetErr(&bytes.Buffer{})
		err := cmd.Execute()
		if tc.err {
			require.Error(t, err, tc.args)
			continue
		}
		require.NoError(t, err)
		require.Equal(t, tc.want, *got)
	}
}

func TestSetFlagsAndStdin(t *testing.T) {
	tests := []struct {
		args []string
		want SetOptions
		err  bool
	}{
		{[]string{"gateway.port", "18789"}, SetOptions{Path: "gateway.port", Value: "18789"}, false},
		{[]string{"channels.telegram.botToken", "-"}, SetOptions{Path: "channels.telegram.botToken", Value: "-"}, false},
		{[]string{"x.y", "1", "--string"}, SetOptions{Path: "x.y", Value: "1", String: true}, false},
		{[]string{"x.y", "--unset"}, SetOptions{Path: "x.y", Unset: true}, false},
		{[]string{"x.y"}, SetOptions{}, true},
	}
	for _, tc := range tests {
		var got *SetOptions
		cmd := newCmdSet(factory(), func(o *SetOptions) error { got = o; return nil })
		cmd.SetArgs(tc.args)
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetErr(&bytes.Buffer{})
		err := cmd.Execute()
		if tc.err {
			require.Error(t, err, tc.args)
			continue
		}
		require.NoError(t, err)
		got.Stdin = nil
		require.Equal(t, tc.want, *got)
	}
	v, err := readValue(&SetOptions{Value: "-", Stdin: strings.NewReader("s3cret\n")})
	require.NoError(t, err)
	require.Equal(t, "s3cret", v)
	_, err = readValue(&SetOptions{Value: "-", Path: "p", Stdin: strings.NewReader("\n")})
	require.Error(t, err)
}

// `config set PATH -` never truncates: a value over the limit is an error
// (exit 1) naming the limit, one at the limit goes through whole.
func TestSetStdinLimit(t *testing.T) {
	tests := []struct {
		name string
		n    int
		want string
	}{
		{"at the limit", config.MaxValueBytes, ""},
		{"one byte over", config.MaxValueBytes + 1, "config set agents.list: value on stdin is over 1 MiB; the limit is 1 MiB"},
		{"far over", 3 << 20, "the limit is 1 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := readValue(&SetOptions{Value: "-", Path: "agents.list", Stdin: strings.NewReader(strings.Repeat("a", tt.n))})
			if tt.want == "" {
				require.NoError(t, err)
				require.Len(t, v, tt.n)
				return
			}
			require.ErrorContains(t, err, tt.want)
			require.Empty(t, v)
			require.Equal(t, cmdutil.ExitError, cmdutil.ExitCode(err))
		})
	}
}

func TestValidateOffline(t *testing.T) {
	dir := t.TempDir()
	f := factory()
	f.StateDirFlag = dir
	p := dir + "/moltbot.json"
	require.NoError(t, writeFile(p, "// upstream\n{channels: {telegram: {dm: {policy: 'open'}}}}\n"))
	err := validateRun(nil, f, &ValidateOptions{Offline: true})
	require.Error(t, err)
	out := f.Out.(*bytes.Buffer).String()
	require.Contains(t, out, p+":2: error: channels.telegram.dm.policy")
	require.Contains(t, out, "fix: run `moltbot security migrate`")

	require.NoError(t, writeFile(p, "{ not json"))
	f.Out = &bytes.Buffer{}
	require.Error(t, validateRun(nil, f, &ValidateOptions{File: p}))
	require.Contains(t, f.Out.(*bytes.Buffer).String(), p+":1")

	var got *ValidateOptions
	cmd := newCmdValidate(f, func(o *ValidateOptions) error { got = o; return nil })
	cmd.SetArgs([]string{"--offline", "--file", "x.json"})
	require.NoError(t, cmd.Execute())
	require.Equal(t, ValidateOptions{Offline: true, File: "x.json"}, *got)
}

func writeFile(p, s string) error { return os.WriteFile(p, []byte(s), 0o600) }

func TestSetReplyNamesEncryptedSecrets(t *testing.T) {
	tests := []struct {
		name, path string
		enc        bool
		sealed     []string
		want       string
	}{
		{"plain field", "logging.level", false, nil, "set logging.level"},
		{"the secret itself", "talk.apiKey", true, []string{"talk.apiKey"}, "set talk.apiKey (encrypted through secretsd)"},
		{"others sealed too", "logging.level", true, []string{"env.OPENAI_API_KEY", "talk.apiKey"},
			"set logging.level\nencrypted 2 plaintext secrets: env.OPENAI_API_KEY, talk.apiKey"},
		{"one other", "hooks.token", true, []string{"hooks.token", "env.X"},
			"set hooks.token (encrypted through secretsd)\nencrypted 1 plaintext secret: env.X"},
		{"old gateway without paths", "gateway.auth.token", true, nil, "set gateway.auth.token (encrypted through secretsd)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, setReply("set", tc.path, tc.enc, tc.sealed))
		})
	}
}
