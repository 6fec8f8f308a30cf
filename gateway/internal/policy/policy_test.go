package policy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/gateway/internal/channels"
	"github.com/moltbot/moltbot-secure/gateway/internal/channels/local"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// fakePairing mimics pairingd's contract: one code per sender, resend at
// most once a minute, at most 3 pending per channel.
type fakePairing struct {
	now      func() time.Time
	allowed  map[string]bool
	pending  map[string]string // channel/sender -> code
	lastSent map[string]time.Time
	full     bool
	down     error
	requests int
	lastMeta map[string]string
}

func newFake(now func() time.Time) *fakePairing {
	return &fakePairing{now: now, allowed: map[string]bool{}, pending: map[string]string{}, lastSent: map[string]time.Time{}}
}

func (f *fakePairing) IsAllowed(_ context.Context, ch, id string) (bool, error) {
	if f.down != nil {
		return false, f.down
	}
	return f.allowed[ch+"/"+id], nil
}

func (f *fakePairing) Request(_ context.Context, ch, id string, meta map[string]string) (RequestResult, error) {
	f.requests++
	f.lastMeta = meta
	k := ch + "/" + id
	if f.allowed[k] {
		return RequestResult{}, fmt.Errorf("already allowed: %w", errs.ErrAlreadyExists)
	}
	now := f.now()
	if code, ok := f.pending[k]; ok {
		r := RequestResult{Code: code, ExpiresAt: now.Add(time.Hour)}
		if now.Sub(f.lastSent[k]) >= time.Minute {
			r.ResendAllowed = true
			f.lastSent[k] = now
		}
		return r, nil
	}
	if f.full || len(f.pending) >= 3 {
		r := RequestResult{QueueFull: true}
		if now.Sub(f.lastSent[k]) >= time.Minute {
			r.ResendAllowed = true
			f.lastSent[k] = now
		}
		return r, nil
	}
	code := fmt.Sprintf("CODE%04d", len(f.pending)+2)
	f.pending[k], f.lastSent[k] = code, now
	return RequestResult{Code: code, Created: true, ResendAllowed: true, ExpiresAt: now.Add(time.Hour)}, nil
}

func TestValidate(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{}, ""},
		{Config{DMPolicy: DMAllowlist, DMAllowFrom: []string{"1"}, GroupPolicy: GroupOpen}, ""},
		{Config{DMPolicy: "open"}, `channels.telegram.dm.policy: "open" is not supported`},
		{Config{DMPolicy: "Pairing"}, "channels.telegram.dm.policy"},
		{Config{GroupPolicy: "all"}, "channels.telegram.groups.policy"},
		{Config{DMAllowFrom: []string{"*"}}, "channels.telegram.dm.allowFrom[0]"},
		{Config{GroupAllowFrom: []string{""}}, "channels.telegram.groups.allowFrom[0]"},
	}
	for _, tc := range tests {
		err := tc.cfg.Validate("telegram")
		if tc.want == "" {
			require.NoError(t, err)
			continue
		}
		require.ErrorIs(t, err, errs.ErrInvalidArgument)
		require.ErrorContains(t, err, tc.want)
	}
	err := Config{DMPolicy: "open"}.Validate("telegram")
	require.ErrorContains(t, err, `use "pairing" and run `+"`moltbot security migrate`")
}

func dm(sender, text string) channels.Inbound {
	return channels.Inbound{Channel: "telegram", SenderID: sender, ChatID: sender, Text: text}
}

func group(gid, sender string) channels.Inbound {
	return channels.Inbound{Channel: "telegram", SenderID: sender, ChatID: gid, GroupID: gid, Text: "hi"}
}

func TestDecide(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		setup   func(f *fakePairing)
		in      channels.Inbound
		deliver bool
		reason  string
		reply   string // substring
		errIs   error
	}{
		{"pairing: unknown sender gets a code", Config{}, nil, dm("1", "hi"), false, ReasonDMPairingCode, "\nCODE0002\n", nil},
		{"pairing: paired sender delivered", Config{}, func(f *fakePairing) { f.allowed["telegram/1"] = true }, dm("1", "hi"), true, ReasonDMPaired, "", nil},
		{"pairing: config allowFrom delivered", Config{DMAllowFrom: []string{"tg:1"}}, nil, dm("1", "hi"), true, ReasonDMConfigAllow, "", nil},
		{"pairing: queue full tells to try later", Config{}, func(f *fakePairing) { f.full = true }, dm("1", "hi"), false, ReasonDMQueueFull, "try again later", nil},
		{"pairing: pairingd down fails closed", Config{}, func(f *fakePairing) { f.down = fmt.Errorf("dial: %w", errs.ErrUnavailable) }, dm("1", "hi"), false, ReasonPairingDown, "", errs.ErrUnavailable},
		{"allowlist: listed", Config{DMPolicy: DMAllowlist, DMAllowFrom: []string{" 1 "}}, nil, dm("1", "hi"), true, ReasonDMConfigAllow, "", nil},
		{"allowlist: paired but not listed", Config{DMPolicy: DMAllowlist}, func(f *fakePairing) { f.allowed["telegram/1"] = true }, dm("1", "hi"), false, ReasonDMNotAllowed, "", nil},
		{"disabled", Config{DMPolicy: DMDisabled, DMAllowFrom: []string{"1"}}, nil, dm("1", "hi"), false, ReasonDMDisabled, "", nil},
		{"group default allowlist: not listed", Config{}, nil, group("-100", "1"), false, ReasonGroupNotAllowed, "", nil},
		{"group allowlist: group listed", Config{GroupAllowFrom: []string{"-100"}}, nil, group("-100", "1"), true, ReasonGroupAllowed, "", nil},
		{"group allowlist: sender listed", Config{GroupAllowFrom: []string{"telegram:1"}}, nil, group("-100", "1"), true, ReasonGroupAllowed, "", nil},
		{"group open", Config{GroupPolicy: GroupOpen}, nil, group("-100", "1"), true, ReasonGroupOpen, "", nil},
		{"group disabled", Config{GroupPolicy: GroupDisabled, GroupAllowFrom: []string{"-100"}}, nil, group("-100", "1"), false, ReasonGroupDisabled, "", nil},
		{"oversized text refused", Config{}, nil, dm("1", strings.Repeat("x", DefaultMaxTextBytes+1)), false, ReasonTooLarge, "", errs.ErrInvalidArgument},
		{"empty sender refused", Config{}, nil, dm("", "hi"), false, "missing sender", "", errs.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			f := newFake(func() time.Time { return now })
			if tc.setup != nil {
				tc.setup(f)
			}
			e, err := New(EngineConfig{Pairing: f, Now: func() time.Time { return now }})
			require.NoError(t, err)
			d, err := e.Decide(context.Background(), tc.cfg, tc.in)
			if tc.errIs != nil {
				require.ErrorIs(t, err, tc.errIs)
			} else {
				require.NoError(t, err)
			}
			require.Equal(t, tc.deliver, d.Deliver)
			require.Equal(t, tc.reason, d.Reason)
			if tc.reply == "" {
				require.Empty(t, d.Reply)
			} else {
				require.Contains(t, d.Reply, tc.reply)
			}
			if errors.Is(tc.errIs, errs.ErrInvalidArgument) {
				require.Zero(t, f.requests, "bad input stores nothing")
			}
		})
	}
}

func TestPairingReplyAndResend(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	f := newFake(clock)
	e, err := New(EngineConfig{Pairing: f, Now: clock})
	require.NoError(t, err)
	ctx := context.Background()
	in := dm("42", "hello")
	in.Meta = map[string]string{"username": "alice\x1b[31m", "name": strings.Repeat("n", 500), "bidi": "\u202Eevil"}

	d, err := e.Decide(ctx, Config{}, in)
	require.NoError(t, err)
	require.False(t, d.Deliver)
	lines := strings.Split(d.Reply, "\n")
	require.Contains(t, lines, "CODE0002", "code on its own line")
	require.Contains(t, lines, "moltbot pairing approve telegram CODE0002", "exact command")
	require.Contains(t, d.Reply, "expires in 60 min")
	require.Equal(t, "alice\uFFFD[31m", f.lastMeta["username"], "control characters neutralised, visibly")
	require.Equal(t, "\uFFFDevil", f.lastMeta["bidi"], "bidi override neutralised")
	require.Len(t, f.lastMeta["name"], 128)

	// Again within the minute: no second reply.
	now = now.Add(5 * time.Second)
	d, err = e.Decide(ctx, Config{}, dm("42", "hello?"))
	require.NoError(t, err)
	require.Empty(t, d.Reply)
	require.Equal(t, ReasonDMPairingQuiet, d.Reason)

	// After the minute: the same code once more.
	now = now.Add(time.Minute)
	d, err = e.Decide(ctx, Config{}, dm("42", "anyone?"))
	require.NoError(t, err)
	require.Equal(t, ReasonDMPairingResend, d.Reason)
	require.Contains(t, d.Reply, "\nCODE0002\n")

	// Fill the queue; the 4th sender is told to try later, once.
	for _, id := range []string{"43", "44"} {
		_, err := e.Decide(ctx, Config{}, dm(id, "hi"))
		require.NoError(t, err)
	}
	d, err = e.Decide(ctx, Config{}, dm("45", "hi"))
	require.NoError(t, err)
	require.Equal(t, QueueFullReply, d.Reply)
	d, err = e.Decide(ctx, Config{}, dm("45", "hi"))
	require.NoError(t, err)
	require.Empty(t, d.Reply)
	require.Equal(t, ReasonDMQueueFullQuiet, d.Reason)

	// Approved (between IsAllowed and Request, or before): delivered.
	f.allowed["telegram/42"] = true
	d, err = e.Decide(ctx, Config{}, dm("42", "now?"))
	require.NoError(t, err)
	require.True(t, d.Deliver)
}

// pipeline is the gateway's per-message path in miniature: decide, then
// either hand to the agent (here: echo) or send the policy's reply.
func pipeline(e *Engine, ch *local.Channel, cfg Config) channels.DeliverFunc {
	return func(ctx context.Context, in channels.Inbound, ack channels.Ack) {
		defer ack(true)
		d, err := e.Decide(ctx, cfg, in)
		if err != nil {
			return
		}
		if d.Deliver {
			_ = ch.Send(ctx, in.ChatID, "agent: "+in.Text)
		} else if d.Reply != "" {
			_ = ch.Send(ctx, in.ChatID, d.Reply)
		}
	}
}

func TestLocalChannelPipeline(t *testing.T) {
	f := newFake(time.Now)
	e, err := New(EngineConfig{Pairing: f})
	require.NoError(t, err)
	ch := local.New()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = ch.Start(ctx, pipeline(e, ch, Config{})) }()
	require.Eventually(t, func() bool { ok, _ := ch.Status(); return ok }, time.Second, time.Millisecond)

	replies, err := ch.Inject(ctx, channels.Inbound{SenderID: "alice", Text: "hi"})
	require.NoError(t, err)
	require.Len(t, replies, 1)
	require.Contains(t, replies[0], "moltbot pairing approve local CODE0002")
	f.allowed["local/alice"] = true
	replies, err = ch.Inject(ctx, channels.Inbound{SenderID: "alice", Text: "hi"})
	require.NoError(t, err)
	require.Equal(t, []string{"agent: hi"}, replies)
}

func TestIsOwner(t *testing.T) {
	dm := func(id string) channels.Inbound {
		return channels.Inbound{Channel: "telegram", SenderID: id, ChatID: id}
	}
	for _, tc := range []struct {
		name   string
		owners []string
		in     channels.Inbound
		want   bool
	}{
		{"exact", []string{"42"}, dm("42"), true},
		{"other", []string{"42"}, dm("43"), false},
		{"prefixed is not an owner id", []string{"telegram:42"}, dm("42"), false},
		{"wildcard never matches", []string{"*"}, dm("*"), false},
		{"empty sender", []string{""}, dm(""), false},
		{"group message", []string{"42"}, channels.Inbound{Channel: "telegram", SenderID: "42", ChatID: "-100", GroupID: "-100"}, false},
		{"no owners", nil, dm("42"), false},
	} {
		t.Run(tc.name, func(t *testing.T) { require.Equal(t, tc.want, IsOwner(tc.owners, tc.in)) })
	}
}

func TestWithOwner(t *testing.T) {
	for _, tc := range []struct {
		name    string
		owners  []string
		id      string
		want    []string
		changed bool
		err     bool
	}{
		{"first", nil, "42", []string{"42"}, true, false},
		{"second", []string{"42"}, "43", []string{"42", "43"}, true, false},
		{"already", []string{"42"}, "42", []string{"42"}, false, false},
		{"wildcard", nil, "*", nil, false, true},
		{"empty", []string{"42"}, " ", nil, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, changed, err := WithOwner(tc.owners, tc.id)
			if tc.err {
				require.ErrorIs(t, err, errs.ErrInvalidArgument)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.changed, changed)
		})
	}
}
