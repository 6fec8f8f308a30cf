package policy

import (
	"context"
	"fmt"

	"github.com/moltbot/moltbot-secure/gateway/internal/channels"
)

// Pairing approvals and dm.policy "allowlist": approvals do NOT count.
//
// As upstream: "allowlist" means exactly channels.<ch>.dm.allowFrom (plus
// the owners); the senders approved by pairing are the "pairing" policy's
// own allowlist. Switching a channel to "allowlist" is an operator
// narrowing who may talk to the agent, and the config file is then the one
// reviewable list of who gets through: honouring approvals granted under
// another policy would let in people the file does not name. Approvals are
// kept (switching back to "pairing" restores them), `pairing list
// --allowed` says per sender whether the active policy lets them through,
// and a blocked approved sender gets the same decision as any other
// sender not in dm.allowFrom (recorded as message.blocked in the security
// log), never a silent special case.

// LetThrough reports whether cfg lets an approved (paired) sender's DMs on
// channel through, and otherwise why and the fix. It runs Decide itself
// with a pairing answer of "approved", so it cannot drift from the rule
// the messages meet.
func LetThrough(cfg Config, channel, senderID string) (bool, string) {
	e := &Engine{pairing: approvedPairing{}, maxText: DefaultMaxTextBytes}
	d, err := e.Decide(context.Background(), cfg, channels.Inbound{Channel: channel, SenderID: senderID})
	if err != nil {
		return false, err.Error()
	}
	if d.Deliver {
		return true, ""
	}
	switch d.Reason {
	case ReasonDMNotAllowed:
		return false, fmt.Sprintf("dm.policy allowlist: add to channels.%s.dm.allowFrom", channel)
	case ReasonDMDisabled:
		return false, fmt.Sprintf("dm.policy disabled: set channels.%s.dm.policy to pairing or allowlist", channel)
	}
	return false, d.Reason
}

// approvedPairing answers as pairingd does for an approved sender.
type approvedPairing struct{}

func (approvedPairing) IsAllowed(context.Context, string, string) (bool, error) { return true, nil }

func (approvedPairing) Request(context.Context, string, string, map[string]string) (RequestResult, error) {
	return RequestResult{}, fmt.Errorf("an approved sender is never asked for a code")
}
