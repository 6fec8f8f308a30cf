package pkiinit

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/services/statedir"
)

// What `certs init` writes passes the daemons' start-up pki check, so a
// fresh stack logs no pki problem (statedir.PKIMode is the one rule).
func TestFreshPKIPassesTheStartupCheck(t *testing.T) {
	state := t.TempDir()
	pki := filepath.Join(state, "pki")
	_, err := Init(Options{PKIDir: pki})
	require.NoError(t, err)
	// Compose's init makes the shared bootstrap token group-readable.
	require.NoError(t, os.Chmod(filepath.Join(pki, GatewayTokenFile), 0o440))
	rep, err := statedir.FixAtStart(state, pki, nil)
	require.NoError(t, err)
	require.Empty(t, rep.Problems)
}
