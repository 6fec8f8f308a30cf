package cmdutil_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
)

func mkBundle(t *testing.T, dir string) string {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "pki"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pki", "ca.pem"), []byte("x"), 0o600))
	return dir
}

func TestLocate(t *testing.T) {
	root := t.TempDir()
	home := filepath.Join(root, "home")
	repo := filepath.Join(home, "src", "moltbot")
	sub := filepath.Join(repo, "cli", "cmd")
	require.NoError(t, os.MkdirAll(sub, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(repo, ".git"), []byte("gitdir: x"), 0o600)) // a worktree's .git is a file
	repoBundle := mkBundle(t, filepath.Join(repo, ".moltbot"))
	other := mkBundle(t, filepath.Join(root, "other-stack"))
	outside := filepath.Join(root, "elsewhere")
	require.NoError(t, os.MkdirAll(outside, 0o700))
	// A bundle above the repo root is not the repo's: the walk stops at .git.
	mkBundle(t, filepath.Join(home, "src", ".moltbot"))
	repo2 := filepath.Join(home, "src", "another")
	require.NoError(t, os.MkdirAll(filepath.Join(repo2, ".git"), 0o700))

	writePointer := func(t *testing.T, bundle, gw string) {
		require.NoError(t, os.MkdirAll(filepath.Join(home, ".moltbot"), 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(home, ".moltbot", "stack.json"),
			[]byte(`{"bundle_dir": "`+bundle+`", "gateway": "`+gw+`"}`), 0o600))
	}

	for _, tc := range []struct {
		name         string
		flag, env    string
		cwd          string
		pointer      string
		wantDir, src string
		wantGateway  string
	}{
		{"flag first", other, repoBundle, sub, repoBundle, other, "--state-dir", ""},
		{"env next", "", other, sub, repoBundle, other, "$MOLTBOT_STATE_DIR", ""},
		{"./.moltbot from a sub-directory", "", "", sub, "", repoBundle, "./.moltbot", ""},
		{"./.moltbot takes the pointer's address when it names it", "", "", repo, repoBundle, repoBundle, "./.moltbot", "127.0.0.1:18901"},
		{"the pointer outside the checkout", "", "", outside, other, other, cmdutil.PointerPath, "127.0.0.1:18901"},
		{"the walk stops at the repo root", "", "", repo2, repoBundle, repoBundle, cmdutil.PointerPath, "127.0.0.1:18901"},
		{"~/.moltbot last", "", "", outside, "", filepath.Join(home, ".moltbot"), "~/.moltbot", ""},
		{"a pointer to a dir with no bundle is skipped", "", "", outside, filepath.Join(root, "gone"), filepath.Join(home, ".moltbot"), "~/.moltbot", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_ = os.RemoveAll(filepath.Join(home, ".moltbot"))
			if tc.pointer != "" {
				writePointer(t, tc.pointer, "127.0.0.1:18901")
			}
			t.Setenv("MOLTBOT_STATE_DIR", tc.env)
			l, err := cmdutil.Locate(tc.flag, tc.cwd, home)
			require.NoError(t, err)
			require.Equal(t, tc.wantDir, l.Dir)
			require.Equal(t, tc.src, l.Source)
			require.Equal(t, tc.wantGateway, l.Gateway)
		})
	}
}
