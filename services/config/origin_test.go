package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNormalizeOrigin(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"https://Host.Tailnet.ts.net", "https://host.tailnet.ts.net", true},
		{"https://host.ts.net/", "https://host.ts.net", true},
		{"http://127.0.0.1:18793", "http://127.0.0.1:18793", true},
		{"host.ts.net", "", false},
		{"ftp://host", "", false},
		{"https://host/path", "", false},
		{"https://user@host", "", false},
		{"https://host?x=1", "", false},
		{"", "", false},
	} {
		got, err := NormalizeOrigin(tc.in)
		if !tc.ok {
			require.Error(t, err, tc.in)
			require.Contains(t, err.Error(), "scheme://host[:port]")
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got)
	}
}

// allowedOrigins: bad entries are validation errors naming the index;
// the view keeps the good ones, normalised. The deprecated flags warn
// (they work as the seed says), never refuse.
func TestControlUIConfig(t *testing.T) {
	c, err := Parse("moltbot.json", []byte(`{"gateway":{"auth":{"token":"${file:t}"},"controlUi":{"allowedOrigins":["https://GW.ts.net","gw.ts.net"],"dangerouslyDisableDeviceAuth":true}}}`))
	require.NoError(t, err)
	ps := c.Validate()
	p := problemAt(ps, "gateway.controlUi.allowedOrigins[1]")
	require.NotNil(t, p, "%v", ps)
	require.Equal(t, SevError, p.Severity)
	require.Nil(t, problemAt(ps, "gateway.controlUi.allowedOrigins[0]"))
	p = problemAt(ps, "gateway.controlUi.dangerouslyDisableDeviceAuth")
	require.NotNil(t, p)
	require.Equal(t, SevWarning, p.Severity)
	v := c.View()
	require.Equal(t, []string{"https://gw.ts.net"}, v.Gateway.ControlUI.AllowedOrigins)
	require.True(t, v.Gateway.ControlUI.DangerouslyDisableDeviceAuth)
}
