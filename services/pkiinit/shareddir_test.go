package pkiinit

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/services/atomicfile"
	"github.com/moltbot/moltbot-secure/services/tlsutil"
)

// The secret-files dir: setgid 2750, so a 0640 file secretsd writes there
// (atomically, through a temp file) carries the shared group the gateway has.
func TestSharedDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secret-files")
	gid := os.Getgid()
	if os.Getuid() == 0 {
		gid = 65110 // a group the test process is not in: inheritance must come from setgid
	}
	require.NoError(t, SharedDir(dir, tlsutil.Owner{UID: os.Getuid(), GID: gid}))
	st, err := os.Stat(dir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o750), st.Mode().Perm())
	require.NotZero(t, st.Mode()&os.ModeSetgid, "setgid")
	require.Equal(t, uint32(gid), st.Sys().(*syscall.Stat_t).Gid)

	f := filepath.Join(dir, "openai.key")
	require.NoError(t, atomicfile.WriteFile(f, []byte("x"), 0o640))
	fst, err := os.Stat(f)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o640), fst.Mode().Perm())
	require.Equal(t, uint32(gid), fst.Sys().(*syscall.Stat_t).Gid, "the file inherits the dir's group")

	// Idempotent: a second init keeps it as it is.
	require.NoError(t, SharedDir(dir, tlsutil.Owner{UID: os.Getuid(), GID: gid}))
}
