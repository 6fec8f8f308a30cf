package sessionkey

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/services/errs"
)

// TestDM is the session derivation table: only an owner under dmScope main
// folds into the main session.
func TestDM(t *testing.T) {
	for _, tc := range []struct {
		name  string
		scope DMScope
		owner bool
		key   string
		main  bool
	}{
		{"owner main", ScopeMain, true, "agent:main:main", true},
		{"owner per-peer", ScopePerPeer, true, "agent:main:dm:42", false},
		{"owner per-channel-peer", ScopePerChannelPeer, true, "agent:main:telegram:dm:42", false},
		{"owner per-sender", ScopePerSender, true, "agent:main:telegram:dm:42", false},
		{"non-owner main", ScopeMain, false, "agent:main:telegram:dm:42", false},
		{"non-owner per-peer", ScopePerPeer, false, "agent:main:telegram:dm:42", false},
		{"non-owner per-channel-peer", ScopePerChannelPeer, false, "agent:main:telegram:dm:42", false},
		{"non-owner empty scope", "", false, "agent:main:telegram:dm:42", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, m := DM("main", tc.scope, "telegram", "42", tc.owner)
			require.Equal(t, tc.key, k)
			require.Equal(t, tc.main, m)
			require.Equal(t, tc.main, IsMain(k, "main"), "DM's main flag and IsMain agree")
		})
	}
	require.Equal(t, "agent:main:telegram:group:-100", Group("main", "telegram", "-100"))
}

func TestIsMain(t *testing.T) {
	for _, tc := range []struct {
		key, agent string
		main       bool
	}{
		{"agent:a1:main", "a1", true},
		{"agent:a1:main", "", true},
		{"agent:a1:main", "b2", false},
		{"agent::main", "", false},
		{"agent:a1:telegram:group:-1", "a1", false},
		{"agent:a1:telegram:dm:42", "a1", false},
		{"agent:a1:telegram:dm:x:main", "a1", false}, // a sender id ending in :main
		{"main", "a1", false},
		{"", "a1", false},
	} {
		require.Equal(t, tc.main, IsMain(tc.key, tc.agent), "%q agent %q", tc.key, tc.agent)
	}
}

func TestParseDMScope(t *testing.T) {
	s, err := ParseDMScope("")
	require.NoError(t, err)
	require.Equal(t, ScopeMain, s)
	_, err = ParseDMScope("per-everything")
	require.ErrorIs(t, err, errs.ErrInvalidArgument)
	require.ErrorContains(t, err, "session.dmScope")
}
