package policy

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/gateway/internal/channels"
)

func TestLetThrough(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		sender  string
		want    bool
		because string
	}{
		{"pairing: approvals are the list", Config{}, "42", true, ""},
		{"explicit pairing", Config{DMPolicy: DMPairing}, "42", true, ""},
		{"allowlist: approved but not listed", Config{DMPolicy: DMAllowlist, DMAllowFrom: []string{"7"}}, "42", false,
			"dm.policy allowlist: add to channels.telegram.dm.allowFrom"},
		{"allowlist: listed", Config{DMPolicy: DMAllowlist, DMAllowFrom: []string{"tg:42"}}, "42", true, ""},
		{"allowlist: owner", Config{DMPolicy: DMAllowlist, Owners: []string{"42"}}, "42", true, ""},
		{"disabled", Config{DMPolicy: DMDisabled, DMAllowFrom: []string{"42"}}, "42", false,
			"dm.policy disabled: set channels.telegram.dm.policy to pairing or allowlist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, because := LetThrough(tc.cfg, "telegram", tc.sender)
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.because, because)
		})
	}
}

// TestApprovedSenderBlockedLikeAnyOther: under allowlist an approved
// sender's DM gets exactly the decision a stranger's gets (no reply, the
// allowlist reason that the pipeline records as message.blocked), and
// pairingd is not asked to store a code for either.
func TestApprovedSenderBlockedLikeAnyOther(t *testing.T) {
	now := func() time.Time { return time.Unix(1_700_000_000, 0) }
	f := newFake(now)
	f.allowed["telegram/42"] = true
	e, err := New(EngineConfig{Pairing: f, Now: now})
	require.NoError(t, err)
	cfg := Config{DMPolicy: DMAllowlist, DMAllowFrom: []string{"7"}}
	approved, err := e.Decide(context.Background(), cfg, channels.Inbound{Channel: "telegram", SenderID: "42", Text: "hi"})
	require.NoError(t, err)
	stranger, err := e.Decide(context.Background(), cfg, channels.Inbound{Channel: "telegram", SenderID: "99", Text: "hi"})
	require.NoError(t, err)
	require.Equal(t, stranger, approved)
	require.False(t, approved.Deliver)
	require.Equal(t, ReasonDMNotAllowed, approved.Reason)
	require.Zero(t, f.requests)
	ok, _ := LetThrough(cfg, "telegram", "42")
	require.Equal(t, approved.Deliver, ok, "LetThrough and Decide disagree")
}
