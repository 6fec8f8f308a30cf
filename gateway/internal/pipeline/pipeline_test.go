package pipeline

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/gateway/internal/agent"
	"github.com/moltbot/moltbot-secure/gateway/internal/channels/local"
	"github.com/moltbot/moltbot-secure/gateway/internal/policy"
	"github.com/moltbot/moltbot-secure/gateway/internal/sessions"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// memPairing stands in for pairingd (tested for real in services/integration).
type memPairing struct {
	mu      sync.Mutex
	allowed map[string]bool
	codes   map[string]string
	down    bool
}

func (m *memPairing) Request(_ context.Context, ch, id string, _ map[string]string) (policy.RequestResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return policy.RequestResult{}, errs.ErrUnavailable
	}
	if c, ok := m.codes[ch+"/"+id]; ok {
		return policy.RequestResult{Code: c, ResendAllowed: true}, nil
	}
	c := "ABCDEFG" + string(rune('A'+len(m.codes)))
	m.codes[ch+"/"+id] = c
	return policy.RequestResult{Code: c, Created: true, ResendAllowed: true, ExpiresAt: time.Now().Add(time.Hour)}, nil
}

func (m *memPairing) IsAllowed(_ context.Context, ch, id string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return false, errs.ErrUnavailable
	}
	return m.allowed[ch+"/"+id], nil
}

type echo struct{}

func (echo) Reply(_ context.Context, t agent.Turn) (string, error) { return "echo: " + t.Text, nil }

func newPipeline(t testing.TB, pol policy.Config, ag agent.Agent, scope sessions.DMScope) (*Pipeline, *memPairing) {
	t.Helper()
	mp := &memPairing{allowed: map[string]bool{}, codes: map[string]string{}}
	eng, err := policy.New(policy.EngineConfig{Pairing: mp})
	require.NoError(t, err)
	st, err := sessions.Open(filepath.Join(t.TempDir(), "sessions.json"), nil)
	require.NoError(t, err)
	p, err := New(Config{Engine: eng, Channels: []Channel{{Channel: local.New(), Policy: pol}}, Agent: ag, Sessions: st, DMScope: scope})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Start(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	require.Eventually(t, func() bool { return p.Channels()[0].Connected }, time.Second, time.Millisecond)
	return p, mp
}

func TestSendLocal(t *testing.T) {
	p, mp := newPipeline(t, policy.Config{GroupAllowFrom: []string{"team"}}, echo{}, "")
	ctx := context.Background()

	r, err := p.SendLocal(ctx, Message{From: "alice", Text: "hi"})
	require.NoError(t, err)
	require.False(t, r.ReachedAgent)
	require.Equal(t, policy.ReasonDMPairingCode, r.Decision)
	require.Len(t, r.Replies, 1)
	require.Contains(t, r.Replies[0], "moltbot pairing approve local ABCDEFGA")

	mp.allowed["local/alice"] = true
	require.NoError(t, p.Notify(ctx, "local", "alice", policy.ApprovedNotice))
	r, err = p.SendLocal(ctx, Message{From: "alice", Text: "hello"})
	require.NoError(t, err)
	require.True(t, r.ReachedAgent)
	require.Equal(t, "agent:main:local:dm:alice", r.SessionKey, "an approved sender is not the owner: own session, not main")
	require.Equal(t, []string{policy.ApprovedNotice, "echo: hello"}, r.Replies)

	r, err = p.SendLocal(ctx, Message{From: "bob", GroupID: "team", Text: "yo"})
	require.NoError(t, err)
	require.True(t, r.ReachedAgent)
	require.Equal(t, "agent:main:local:group:team", r.SessionKey)
	r, err = p.SendLocal(ctx, Message{From: "bob", GroupID: "other", Text: "yo"})
	require.NoError(t, err)
	require.False(t, r.ReachedAgent)
	require.Empty(t, r.Replies)

	keys := []string{}
	for _, s := range p.Sessions() {
		keys = append(keys, s.Key)
		require.True(t, s.Sandboxed, "every session runs in a sandbox")
		require.False(t, s.Main)
		require.Equal(t, "hardened", s.Profile)
	}
	require.Equal(t, []string{"agent:main:local:dm:alice", "agent:main:local:group:team"}, keys)
}

func TestSendLocalErrors(t *testing.T) {
	p, mp := newPipeline(t, policy.Config{}, nil, "")
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		m    Message
		want error
		msg  string
	}{
		{"empty sender", Message{Text: "hi"}, errs.ErrInvalidArgument, "from"},
		{"empty text", Message{From: "a", Text: "  "}, errs.ErrInvalidArgument, "text"},
		{"oversized", Message{From: "a", Text: strings.Repeat("x", policy.DefaultMaxTextBytes+1)}, errs.ErrInvalidArgument, "text"},
	} {
		_, err := p.SendLocal(ctx, tc.m)
		require.ErrorIs(t, err, tc.want, tc.name)
		require.ErrorContains(t, err, tc.msg, tc.name)
	}
	require.Empty(t, mp.codes, "nothing stored")

	// No agent: an allowed message is refused with a clear error.
	mp.allowed["local/a"] = true
	_, err := p.SendLocal(ctx, Message{From: "a", Text: "hi"})
	require.ErrorIs(t, err, errs.ErrFailedPrecondition)
	require.ErrorContains(t, err, "no agent")

	// pairingd down: fail closed, Unavailable.
	mp.down = true
	r, err := p.SendLocal(ctx, Message{From: "z", Text: "hi"})
	require.ErrorIs(t, err, errs.ErrUnavailable)
	require.False(t, r.ReachedAgent)
}

func TestDMScopePerSender(t *testing.T) {
	p, mp := newPipeline(t, policy.Config{}, echo{}, sessions.ScopePerSender)
	mp.allowed["local/alice"] = true
	r, err := p.SendLocal(context.Background(), Message{From: "alice", Text: "hi"})
	require.NoError(t, err)
	require.Equal(t, "agent:main:local:dm:alice", r.SessionKey)
}

// recorder keeps the turns the agent saw.
type recorder struct {
	mu    sync.Mutex
	turns []agent.Turn
}

func (r *recorder) Reply(_ context.Context, t agent.Turn) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.turns = append(r.turns, t)
	return "ok", nil
}

// TestOwnerSessions is the session derivation table end to end through the
// pipeline: only the owner's own ids fold into the main session, whatever
// dmScope says for the others; owners apply again after SetOwners (reload).
func TestOwnerSessions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		scope   sessions.DMScope
		from    string
		group   string
		allowed bool // approved through pairing
		config  []string
		key     string
		main    bool
		profile string
	}{
		{"owner main scope", "", "me", "", false, nil, "agent:main:main", true, "main"},
		{"owner per-peer scope", sessions.ScopePerPeer, "me", "", false, nil, "agent:main:dm:me", false, "hardened"},
		{"approved sender main scope", "", "alice", "", true, nil, "agent:main:local:dm:alice", false, "hardened"},
		{"approved sender per-peer scope", sessions.ScopePerPeer, "alice", "", true, nil, "agent:main:local:dm:alice", false, "hardened"},
		{"allowlisted sender", "", "bob", "", false, []string{"bob"}, "agent:main:local:dm:bob", false, "hardened"},
		{"owner in a group", "", "me", "team", false, nil, "agent:main:local:group:team", false, "hardened"},
		{"owner-like id", "", "me ", "", true, nil, "agent:main:local:dm:me ", false, "hardened"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			p, mp := newPipeline(t, policy.Config{DMAllowFrom: tc.config, GroupAllowFrom: []string{"team"}}, rec, tc.scope)
			p.SetOwners(map[string][]string{"local": {"me"}, "telegram": {"alice"}})
			mp.allowed["local/"+tc.from] = tc.allowed
			r, err := p.SendLocal(context.Background(), Message{From: tc.from, GroupID: tc.group, Text: "hi", FromOwner: true})
			require.NoError(t, err)
			require.True(t, r.ReachedAgent, r.Decision)
			require.Equal(t, tc.key, r.SessionKey)
			require.Len(t, rec.turns, 1)
			require.Equal(t, tc.main, rec.turns[0].Main)
			require.Equal(t, tc.main, rec.turns[0].Owner && tc.scope == "" && tc.group == "")
			ss := p.Sessions()
			require.Len(t, ss, 1)
			require.Equal(t, tc.profile, ss[0].Profile)
		})
	}

	// An owner needs no pairing; after a reload drops them they do.
	rec := &recorder{}
	p, _ := newPipeline(t, policy.Config{}, rec, "")
	p.SetOwners(map[string][]string{"local": {"me"}})
	r, err := p.SendLocal(context.Background(), Message{From: "me", Text: "hi", FromOwner: true})
	require.NoError(t, err)
	require.Equal(t, policy.ReasonDMOwner, r.Decision)
	// A client (not the owner principal) cannot send as the local owner.
	_, err = p.SendLocal(context.Background(), Message{From: "me", Text: "/exec cat /workspace/x"})
	require.ErrorIs(t, err, errs.ErrPermissionDenied)
	require.ErrorContains(t, err, "channels.local.owner")
	require.Len(t, rec.turns, 1, "nothing reached the agent")
	p.SetOwners(nil)
	r, err = p.SendLocal(context.Background(), Message{From: "me", Text: "hi"})
	require.NoError(t, err)
	require.False(t, r.ReachedAgent)
	require.Equal(t, policy.ReasonDMPairingCode, r.Decision)
}

func TestNewRefusesOpenPolicy(t *testing.T) {
	eng, err := policy.New(policy.EngineConfig{Pairing: &memPairing{}})
	require.NoError(t, err)
	st, err := sessions.Open(filepath.Join(t.TempDir(), "s.json"), nil)
	require.NoError(t, err)
	_, err = New(Config{Engine: eng, Sessions: st, Channels: []Channel{{Channel: local.New(), Policy: policy.Config{DMPolicy: "open"}}}})
	require.ErrorContains(t, err, "channels.local.dm.policy")
	require.ErrorContains(t, err, "moltbot security migrate")
	require.True(t, errors.Is(err, errs.ErrInvalidArgument))
}

// BenchmarkLocalSend is the per-message cost of the pipeline (policy
// decision, session index, echo agent, reply through the local channel) for
// an allowed sender, reported as an absolute figure.
func BenchmarkLocalSend(b *testing.B) {
	p, mp := newPipeline(b, policy.Config{}, echo{}, "")
	mp.allowed["local/alice"] = true
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.SendLocal(ctx, Message{From: "alice", Text: "hi"}); err != nil {
			b.Fatal(err)
		}
	}
}
