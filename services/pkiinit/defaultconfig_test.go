package pkiinit

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/tlsutil"
	"github.com/stretchr/testify/require"
)

func TestDefaultConfig(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, config.FileName)
	var ow *tlsutil.Owner
	if os.Getuid() == 0 {
		ow = &tlsutil.Owner{UID: 65101, GID: 65101}
	}
	created, err := DefaultConfig(p, ow)
	require.NoError(t, err)
	require.True(t, created)
	fi, err := os.Stat(p)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	if ow != nil {
		require.Equal(t, uint32(65101), fi.Sys().(*syscall.Stat_t).Uid)
	}
	want, err := config.DefaultFile()
	require.NoError(t, err)
	got, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, string(want), string(got))

	// An operator's file is never touched.
	require.NoError(t, os.WriteFile(p, []byte(`{"version":1}`), 0o600))
	created, err = DefaultConfig(p, ow)
	require.NoError(t, err)
	require.False(t, created)
	got, _ = os.ReadFile(p)
	require.Equal(t, `{"version":1}`, string(got))
	es, _ := os.ReadDir(dir)
	require.Len(t, es, 1, "no temp file left")

	// A missing dir is an error naming the path, not a panic.
	_, err = DefaultConfig(filepath.Join(dir, "no", config.FileName), nil)
	require.ErrorContains(t, err, filepath.Join(dir, "no", config.FileName))
}
