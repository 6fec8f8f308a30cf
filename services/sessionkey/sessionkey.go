// Package sessionkey is the one rule for session keys, shared by the
// gateway (which derives them) and sandboxd (which reads them): the shapes
// follow upstream, agent:<agentId>:main for the agent's main DM session,
// agent:<agentId>:dm:<sender> and agent:<agentId>:<channel>:dm:<sender> for
// per-peer DMs, agent:<agentId>:<channel>:group:<id> for groups.
//
// The main session belongs to the owner's own sender ids only
// (channels.<ch>.owner): every other allowed DM sender gets a
// per-channel-peer session, whatever session.dmScope says, so an approved
// pairing request or an allowlisted id never reaches the main session.
package sessionkey

import (
	"fmt"
	"strings"

	"github.com/moltbot/moltbot-secure/services/errs"
)

// DMScope says how the owner's direct messages map to sessions (config
// session.dmScope). Non-owners always get ScopePerChannelPeer.
type DMScope string

// DM scopes. PerSender is accepted as a synonym of PerChannelPeer.
const (
	ScopeMain           DMScope = "main"
	ScopePerPeer        DMScope = "per-peer"
	ScopePerChannelPeer DMScope = "per-channel-peer"
	ScopePerSender      DMScope = "per-sender"
)

// ParseDMScope checks a session.dmScope value ("" is main).
func ParseDMScope(s string) (DMScope, error) {
	switch DMScope(s) {
	case "", ScopeMain:
		return ScopeMain, nil
	case ScopePerPeer, ScopePerChannelPeer, ScopePerSender:
		return DMScope(s), nil
	}
	return "", fmt.Errorf("session.dmScope: %q is not one of main, per-peer, per-channel-peer, per-sender: %w", s, errs.ErrInvalidArgument)
}

// DM is the session key of a direct message from sender on channel; owner
// says whether sender is one of the channel's owner ids. main reports
// whether the key is the agent's main session: only an owner under
// ScopeMain gets it.
func DM(agentID string, scope DMScope, channel, sender string, owner bool) (key string, main bool) {
	if !owner {
		scope = ScopePerChannelPeer
	}
	switch scope {
	case ScopePerPeer:
		return "agent:" + agentID + ":dm:" + sender, false
	case ScopePerChannelPeer, ScopePerSender:
		return "agent:" + agentID + ":" + channel + ":dm:" + sender, false
	}
	return Main(agentID), true
}

// Main is the agent's main session key.
func Main(agentID string) string { return "agent:" + agentID + ":main" }

// Group is the session key of a group conversation.
func Group(agentID, channel, groupID string) string {
	return "agent:" + agentID + ":" + channel + ":group:" + groupID
}

// IsMain reports whether key is the main session "agent:<id>:main" of
// agentID ("" accepts any agent). Groups, channels and other DMs are not:
// a sender id cannot forge it, since a DM key always has more parts.
func IsMain(key, agentID string) bool {
	p := strings.Split(key, ":")
	if len(p) != 3 || p[0] != "agent" || p[1] == "" || p[2] != "main" {
		return false
	}
	return agentID == "" || p[1] == agentID
}
