package statedir

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCheckRepairsModesAndReportsEscapingSymlinks(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, Ensure(dir))
	require.NoError(t, os.Chmod(dir, 0o700)) // t.TempDir is 0755
	require.NoError(t, os.Chmod(filepath.Join(dir, "keys"), 0o755))
	cfg := filepath.Join(dir, "moltbot.json")
	require.NoError(t, os.WriteFile(cfg, []byte("{}"), 0o644))
	outside := filepath.Join(t.TempDir(), "secret.txt")
	require.NoError(t, os.WriteFile(outside, []byte("x"), 0o644))
	require.NoError(t, os.Symlink(outside, filepath.Join(dir, "credentials", "leak.json")))

	issues, err := Check(dir, Options{})
	require.NoError(t, err)
	kinds := map[string]int{}
	for _, is := range issues {
		kinds[is.Kind]++
		require.False(t, is.Fixed)
	}
	require.Equal(t, map[string]int{"dir_mode": 1, "file_mode": 1, "symlink_escape": 1}, kinds)

	issues, err = Check(dir, Options{Fix: true})
	require.NoError(t, err)
	for _, is := range issues {
		if is.Kind != "symlink_escape" {
			require.True(t, is.Fixed, is.Path)
		}
	}
	fi, _ := os.Stat(cfg)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	fi, _ = os.Stat(filepath.Join(dir, "keys"))
	require.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
	fi, _ = os.Stat(outside)
	require.Equal(t, os.FileMode(0o644), fi.Mode().Perm(), "the symlink target outside is never touched")

	issues, err = Check(dir, Options{})
	require.NoError(t, err)
	require.Len(t, issues, 1, "only the symlink remains, reported not fixed")
}

func TestSafeJoin(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	require.NoError(t, os.Symlink(outside, filepath.Join(dir, "out")))
	tests := []struct {
		rel string
		ok  bool
	}{
		{"pki/ca.pem", true},
		{"../etc/passwd", false},
		{"/etc/passwd", false},
		{"out", false},
	}
	for _, tc := range tests {
		_, err := SafeJoin(dir, tc.rel)
		require.Equal(t, tc.ok, err == nil, "%s: %v", tc.rel, err)
	}
}

func TestEnsureRefusesSymlinkedSubdir(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.Symlink(t.TempDir(), filepath.Join(dir, "keys")))
	require.ErrorContains(t, Ensure(dir), "symlink")
}
