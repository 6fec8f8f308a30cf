// Package policy decides, per inbound message, whether it reaches the agent
// and what the bot answers otherwise (DESIGN section 5): DM policy pairing
// (default) | allowlist | disabled, group policy allowlist (default) |
// disabled | open. Upstream's DM policy "open" is refused by Validate.
//
// Decisions fail closed: when pairingd cannot be asked, nothing is delivered.
package policy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/moltbot/moltbot-secure/gateway/internal/channels"
	"github.com/moltbot/moltbot-secure/services/errs"
	"github.com/moltbot/moltbot-secure/services/textsafe"
)

// DMPolicy says who may talk to the bot in a direct message.
type DMPolicy string

// DM policies.
const (
	DMPairing   DMPolicy = "pairing"
	DMAllowlist DMPolicy = "allowlist"
	DMDisabled  DMPolicy = "disabled"
)

// GroupPolicy says which group messages reach the agent.
type GroupPolicy string

// Group policies.
const (
	GroupAllowlist GroupPolicy = "allowlist"
	GroupDisabled  GroupPolicy = "disabled"
	GroupOpen      GroupPolicy = "open"
)

// DefaultMaxTextBytes bounds an inbound message's text.
const DefaultMaxTextBytes = 16 << 10

// Config is one channel's policy (channels.<name>.dm / .groups). Empty
// policies take the defaults (pairing, allowlist).
type Config struct {
	DMPolicy    DMPolicy
	DMAllowFrom []string // sender ids always allowed in DMs
	GroupPolicy GroupPolicy
	// GroupAllowFrom lists group ids, or sender ids, whose group messages
	// reach the agent under the allowlist group policy.
	GroupAllowFrom []string
	// Owners are the owner's own sender ids (channels.<ch>.owner): their DMs
	// are delivered without pairing, and only they reach the main session.
	Owners []string
}

// WithOwner returns owners with id added (pairing approve --owner), and
// whether it changed. An empty id or a wildcard is refused: an owner id is
// always one exact sender.
func WithOwner(owners []string, id string) ([]string, bool, error) {
	if strings.TrimSpace(id) == "" || strings.ContainsAny(id, "*?") {
		return nil, false, fmt.Errorf("owner id %q: an owner is one exact sender id, never empty or a wildcard: %w", id, errs.ErrInvalidArgument)
	}
	for _, o := range owners {
		if o == id {
			return owners, false, nil
		}
	}
	return append(append([]string(nil), owners...), id), true, nil
}

// IsOwner is the one owner rule: a DM whose sender id equals one of owners
// exactly (no prefixes, no wildcards: the config validator refuses them).
func IsOwner(owners []string, in channels.Inbound) bool {
	if !in.IsDM() || in.SenderID == "" {
		return false
	}
	for _, o := range owners {
		if o == in.SenderID && !strings.ContainsAny(o, "*?") {
			return true
		}
	}
	return false
}

// Validate checks a channel's policy; channel names the config path in messages.
func (c Config) Validate(channel string) error {
	switch c.DMPolicy {
	case "", DMPairing, DMAllowlist, DMDisabled:
	case "open":
		return fmt.Errorf("channels.%s.dm.policy: \"open\" is not supported (anyone could talk to the agent); use \"pairing\" and run `moltbot security migrate`: %w", channel, errs.ErrInvalidArgument)
	default:
		return fmt.Errorf("channels.%s.dm.policy: %q is not one of pairing, allowlist, disabled: %w", channel, c.DMPolicy, errs.ErrInvalidArgument)
	}
	switch c.GroupPolicy {
	case "", GroupAllowlist, GroupDisabled, GroupOpen:
	default:
		return fmt.Errorf("channels.%s.groups.policy: %q is not one of allowlist, disabled, open: %w", channel, c.GroupPolicy, errs.ErrInvalidArgument)
	}
	for i, id := range c.DMAllowFrom {
		if strings.TrimSpace(id) == "*" {
			return fmt.Errorf("channels.%s.dm.allowFrom[%d]: \"*\" would allow everyone; list sender ids, or use dm.policy \"pairing\": %w", channel, i, errs.ErrInvalidArgument)
		}
		if strings.TrimSpace(id) == "" {
			return fmt.Errorf("channels.%s.dm.allowFrom[%d]: empty entry: %w", channel, i, errs.ErrInvalidArgument)
		}
	}
	for i, id := range c.GroupAllowFrom {
		if strings.TrimSpace(id) == "" || strings.TrimSpace(id) == "*" {
			return fmt.Errorf("channels.%s.groups.allowFrom[%d]: %q is not a group or sender id (use groups.policy \"open\" to allow every group): %w", channel, i, id, errs.ErrInvalidArgument)
		}
	}
	return nil
}

// RequestResult mirrors pairingd's RequestResponse.
type RequestResult struct {
	Code          string
	Created       bool
	QueueFull     bool
	ResendAllowed bool
	ExpiresAt     time.Time
}

// PairingClient is what the policy needs from pairingd.
type PairingClient interface {
	Request(ctx context.Context, channel, senderID string, meta map[string]string) (RequestResult, error)
	IsAllowed(ctx context.Context, channel, senderID string) (bool, error)
}

// Decision is the outcome for one message. Reply, when set, goes back to the
// sender's chat; Reason is for the log (never shown to the sender).
type Decision struct {
	Deliver bool
	Reply   string
	Reason  string
}

// EngineConfig configures an Engine.
type EngineConfig struct {
	Pairing      PairingClient // required
	MaxTextBytes int           // 0: DefaultMaxTextBytes
	Now          func() time.Time
}

// Engine makes policy decisions.
type Engine struct {
	pairing PairingClient
	maxText int
	now     func() time.Time
}

// New builds an Engine.
func New(cfg EngineConfig) (*Engine, error) {
	if cfg.Pairing == nil {
		return nil, errors.New("policy: EngineConfig.Pairing is nil")
	}
	e := &Engine{pairing: cfg.Pairing, maxText: cfg.MaxTextBytes, now: cfg.Now}
	if e.maxText <= 0 {
		e.maxText = DefaultMaxTextBytes
	}
	if e.now == nil {
		e.now = time.Now
	}
	return e, nil
}

// Reasons (for logs and tests).
const (
	ReasonDMOwner          = "dm: sender is an owner (channels.<ch>.owner)"
	ReasonDMConfigAllow    = "dm: sender in dm.allowFrom"
	ReasonDMPaired         = "dm: sender paired"
	ReasonDMPairingCode    = "dm pairing: code sent"
	ReasonDMPairingResend  = "dm pairing: code sent again"
	ReasonDMPairingQuiet   = "dm pairing: asked again too soon, no reply"
	ReasonDMQueueFull      = "dm pairing: pending queue full, told to try later"
	ReasonDMQueueFullQuiet = "dm pairing: pending queue full, already told"
	ReasonDMDisabled       = "dm: dm.policy disabled"
	ReasonDMNotAllowed     = "dm: sender not in dm.allowFrom"
	ReasonGroupDisabled    = "group: groups.policy disabled"
	ReasonGroupOpen        = "group: groups.policy open"
	ReasonGroupAllowed     = "group: in groups.allowFrom"
	ReasonGroupNotAllowed  = "group: not in groups.allowFrom"
	ReasonTooLarge         = "message text too large"
	ReasonPairingDown      = "pairing service unavailable; failing closed"
)

// QueueFullReply is sent when the channel's pending queue is full.
const QueueFullReply = "I can't take new pairing requests right now: too many are waiting for the owner. Please try again later."

// Decide decides for one inbound message. An error means the input was bad
// (errs.ErrInvalidArgument: empty sender, text over the limit; nothing was
// stored) or pairingd failed (the Decision then delivers nothing).
func (e *Engine) Decide(ctx context.Context, cfg Config, in channels.Inbound) (Decision, error) {
	if strings.TrimSpace(in.SenderID) == "" {
		return Decision{Reason: "missing sender"}, fmt.Errorf("sender_id: empty: %w", errs.ErrInvalidArgument)
	}
	// Before anything else, so an oversized message from a stranger stores nothing.
	if len(in.Text) > e.maxText {
		return Decision{Reason: ReasonTooLarge},
			fmt.Errorf("text: %d bytes, the limit is %d; send a shorter message: %w", len(in.Text), e.maxText, errs.ErrInvalidArgument)
	}
	if !in.IsDM() {
		return decideGroup(cfg, in), nil
	}
	pol := cfg.DMPolicy
	if pol == "" {
		pol = DMPairing
	}
	if pol == DMDisabled {
		return Decision{Reason: ReasonDMDisabled}, nil
	}
	if IsOwner(cfg.Owners, in) {
		return Decision{Deliver: true, Reason: ReasonDMOwner}, nil
	}
	if contains(cfg.DMAllowFrom, in.Channel, in.SenderID) {
		return Decision{Deliver: true, Reason: ReasonDMConfigAllow}, nil
	}
	if pol == DMAllowlist {
		return Decision{Reason: ReasonDMNotAllowed}, nil
	}
	if pol != DMPairing {
		return Decision{Reason: "dm: invalid dm.policy"}, fmt.Errorf("dm.policy %q: %w", pol, errs.ErrFailedPrecondition)
	}
	ok, err := e.pairing.IsAllowed(ctx, in.Channel, in.SenderID)
	if err != nil {
		return Decision{Reason: ReasonPairingDown}, fmt.Errorf("ask pairingd whether sender is allowed: %w", err)
	}
	if ok {
		return Decision{Deliver: true, Reason: ReasonDMPaired}, nil
	}
	res, err := e.pairing.Request(ctx, in.Channel, in.SenderID, sanitizeMeta(in.Meta))
	if errors.Is(err, errs.ErrAlreadyExists) {
		// Approved between the two calls.
		return Decision{Deliver: true, Reason: ReasonDMPaired}, nil
	}
	if err != nil {
		return Decision{Reason: ReasonPairingDown}, fmt.Errorf("request pairing code: %w", err)
	}
	switch {
	case res.QueueFull && res.ResendAllowed:
		return Decision{Reply: QueueFullReply, Reason: ReasonDMQueueFull}, nil
	case res.QueueFull:
		return Decision{Reason: ReasonDMQueueFullQuiet}, nil
	case !res.ResendAllowed:
		return Decision{Reason: ReasonDMPairingQuiet}, nil
	}
	reason := ReasonDMPairingCode
	if !res.Created {
		reason = ReasonDMPairingResend
	}
	return Decision{Reply: PairingReply(in.Channel, res.Code, res.ExpiresAt.Sub(e.now())), Reason: reason}, nil
}

// PairingReply is the message an unknown sender gets: the code on its own
// line, easy to copy, and the exact command for the owner.
func PairingReply(channel, code string, validFor time.Duration) string {
	var b strings.Builder
	b.WriteString("Hi! I only talk to people my owner has approved.\n\n")
	b.WriteString("Your pairing code:\n\n")
	b.WriteString(code)
	b.WriteString("\n\nAsk the owner to run:\n\n")
	fmt.Fprintf(&b, "moltbot pairing approve %s %s\n", channel, code)
	if validFor > 0 {
		mins := int((validFor + time.Minute - 1) / time.Minute)
		fmt.Fprintf(&b, "\nThe code expires in %d min.", mins)
	}
	return b.String()
}

// ApprovedNotice is the confirmation `pairing approve` sends the sender.
const ApprovedNotice = "You're approved: your messages now reach the assistant."

func decideGroup(cfg Config, in channels.Inbound) Decision {
	switch cfg.GroupPolicy {
	case GroupDisabled:
		return Decision{Reason: ReasonGroupDisabled}
	case GroupOpen:
		return Decision{Deliver: true, Reason: ReasonGroupOpen}
	}
	if contains(cfg.GroupAllowFrom, in.Channel, in.GroupID) || contains(cfg.GroupAllowFrom, in.Channel, in.SenderID) {
		return Decision{Deliver: true, Reason: ReasonGroupAllowed}
	}
	// No reply in groups: a pairing prompt there would spam everyone.
	return Decision{Reason: ReasonGroupNotAllowed}
}

// contains matches id against list entries, ignoring surrounding space and
// a "<channel>:" prefix (and "tg:" for telegram), as upstream configs use them.
func contains(list []string, channel, id string) bool {
	if id == "" {
		return false
	}
	for _, e := range list {
		e = strings.TrimSpace(e)
		for _, p := range []string{channel + ":", "tg:"} {
			if p == "tg:" && channel != "telegram" {
				continue
			}
			if len(e) > len(p) && strings.EqualFold(e[:len(p)], p) {
				e = e[len(p):]
				break
			}
		}
		if e == id {
			return true
		}
	}
	return false
}

// sanitizeMeta keeps sender labels within pairingd's limits: a stranger's
// overlong or control-character display name must not make Request fail.
func sanitizeMeta(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := map[string]string{}
	for k, v := range m {
		if len(out) == 8 {
			break
		}
		k, v = clean(k, 32), clean(v, 128)
		if k != "" && v != "" {
			out[k] = v
		}
	}
	return out
}

func clean(s string, max int) string { return textsafe.Neutralize(s, max) }
