package keyring

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/services/errs"
)

// A key id from outside (an envelope's kid) is quoted in the error clipped
// to 16 characters, so a hostile value cannot flood a log line.
func TestUnknownKeyIDIsClipped(t *testing.T) {
	k := openIn(t, t.TempDir())
	env, err := k.Encrypt([]byte("v"), "channels.telegram.botToken")
	require.NoError(t, err)
	for _, tc := range []struct{ kid, want string }{
		{"k9", `"k9"`},
		{strings.Repeat("x", 16), `"` + strings.Repeat("x", 16) + `"`},
		{strings.Repeat("y", 17), `"` + strings.Repeat("y", 16) + `..."`},
		{strings.Repeat("z", 4000), `"` + strings.Repeat("z", 16) + `..."`},
	} {
		env.KID = tc.kid
		_, err := k.Decrypt(env, "channels.telegram.botToken")
		require.ErrorIs(t, err, errs.ErrNotFound)
		require.Contains(t, err.Error(), "key id "+tc.want+" is not in the keyring")
	}
}
