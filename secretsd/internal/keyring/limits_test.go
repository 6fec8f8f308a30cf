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

// The passphrase bounds at their edges (gremlins cannot reach a switch's
// case expressions, so they are pinned here): exactly MaxPassphrase bytes
// and exactly MinPassphrase characters pass; characters, not bytes, count.
func TestPassphraseBoundaries(t *testing.T) {
	for _, tc := range []struct {
		name   string
		pass   string
		export bool
		ok     bool
	}{
		{"max bytes", strings.Repeat("p", MaxPassphrase), true, true},
		{"max+1 bytes on import too", strings.Repeat("p", MaxPassphrase+1), false, false},
		{"12 characters", "twelve chars", true, true},
		{"11 two-byte characters (22 bytes)", strings.Repeat("é", 11), true, false},
		{"12 two-byte characters", strings.Repeat("é", 12), true, true},
		{"short is fine to open an export", "short", false, true},
		{"empty on import", "", false, false},
	} {
		err := checkPassphrase([]byte(tc.pass), tc.export)
		if tc.ok {
			require.NoError(t, err, tc.name)
		} else {
			require.ErrorIs(t, err, errs.ErrInvalidArgument, tc.name)
		}
	}
}
