package config

import (
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/moltbot/moltbot-secure/services/errs"

	"github.com/stretchr/testify/require"
)

// The default file is valid, has no token field, states the secure
// defaults, and means exactly what no file means.
func TestDefaultFile(t *testing.T) {
	t.Setenv("CLAWDBOT_GATEWAY_TOKEN", "")
	t.Setenv("CLAWDBOT_GATEWAY_TOKEN_FILE", "/pki/gateway-auth.token") // as compose runs the gateway
	b, err := DefaultFile()
	require.NoError(t, err)
	c, err := Parse(FileName, b)
	require.NoError(t, err)
	require.Empty(t, c.Validate())
	_, hasToken := GetIn(c.Raw, []string{"gateway", "auth", "token"})
	require.False(t, hasToken, "the gateway reads $CLAWDBOT_GATEWAY_TOKEN_FILE")
	v := c.View()
	require.Equal(t, "pairing", v.Channels["local"].DM.Policy)
	require.Equal(t, "allowlist", v.Channels["local"].Groups.Policy)
	require.Equal(t, "non-main", v.Agents.Sandbox.Mode)
	require.Equal(t, "tools", v.Logging.RedactSensitive)
	require.Equal(t, CurrentVersion, v.Version)

	empty := New("", map[string]any{}).View()
	v.Version, empty.Version = 0, 0
	empty.Channels["local"] = v.Channels["local"] // the default file names the local channel's policies
	require.Equal(t, empty, v, "the file states the defaults; it changes nothing")
}

// A missing file is errs.ErrNotFound and fs.ErrNotExist alike: callers
// test for either, and each means "no file: the defaults".
func TestLoadMissingIsNotExist(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), FileName))
	require.ErrorIs(t, err, fs.ErrNotExist)
	require.ErrorIs(t, err, errs.ErrNotFound)
	require.ErrorContains(t, err, "does not exist")
}
