package seckey

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/services/statedir"
)

// The CLI tells a gateway state dir from an upstream one by the file this
// package writes at the gateway's first start (statedir.GatewayMarker).
func TestKeyFileMarksAGatewayStateDir(t *testing.T) {
	state := t.TempDir()
	require.False(t, statedir.IsGatewayState(state))
	logs := filepath.Join(state, "logs")
	require.NoError(t, os.MkdirAll(logs, 0o700))
	_, _, err := New(logs, newSealer(t)).LoadOrCreate(context.Background())
	require.NoError(t, err)
	require.True(t, statedir.IsGatewayState(state))
}
