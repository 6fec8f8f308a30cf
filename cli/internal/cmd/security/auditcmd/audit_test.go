package auditcmd

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
)

func TestFlags(t *testing.T) {
	tests := []struct {
		args []string
		want Options
		code int
	}{
		{nil, Options{MinScore: -1}, 0},
		{[]string{"--deep", "--min-score", "85"}, Options{Deep: true, MinScore: 85}, 0},
		{[]string{"--fix", "--dry-run"}, Options{Fix: true, DryRun: true, MinScore: -1}, 0},
		{[]string{"--sarif", "--offline"}, Options{SARIF: true, Offline: true, MinScore: -1}, 0},
		{[]string{"--dry-run"}, Options{}, cmdutil.ExitUsage},
	}
	for _, tc := range tests {
		var got *Options
		f := &cmdutil.Factory{Out: &bytes.Buffer{}, Err: &bytes.Buffer{}}
		cmd := NewCmd(f, func(o *Options) error { got = o; return nil })
		cmd.SetArgs(tc.args)
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetErr(&bytes.Buffer{})
		err := cmd.Execute()
		if tc.code != 0 {
			require.Equal(t, tc.code, cmdutil.ExitCode(err), "%v", tc.args)
			continue
		}
		require.NoError(t, err, "%v", tc.args)
		require.Equal(t, tc.want, *got, "%v", tc.args)
	}
}

// Offline on a real state dir: the seed's "before" config scores under 50
// and --min-score makes the exit code say so.
func TestOfflineMinScore(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "moltbot.json", `{gateway:{auth:{token:"short"},controlUi:{allowInsecureAuth:true}},channels:{telegram:{dm:{policy:"open",allowFrom:["*"]}}}}`)
	var out bytes.Buffer
	f := &cmdutil.Factory{StateDirFlag: dir, GatewayAddr: "127.0.0.1:1", Out: &out, Err: &bytes.Buffer{}, JSON: true}
	err := run(nil, f, &Options{Offline: true, MinScore: 85})
	require.Equal(t, cmdutil.ExitDegraded, cmdutil.ExitCode(err), out.String())
	require.Contains(t, out.String(), `"channels.telegram.dm.open"`)
}

func writeFile(t *testing.T, dir, name, body string) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600))
}
