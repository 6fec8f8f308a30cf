package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/gateway/internal/agent"
	"github.com/moltbot/moltbot-secure/gateway/internal/agent/openaitest"
	"github.com/moltbot/moltbot-secure/gateway/internal/channels/telegram/telegramtest"
	"github.com/moltbot/moltbot-secure/gateway/internal/dispatch"
	"github.com/moltbot/moltbot-secure/gateway/internal/pipeline"
	"github.com/moltbot/moltbot-secure/gateway/internal/policy"
	"github.com/moltbot/moltbot-secure/gateway/internal/sessions"
	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/errs"
)

const (
	botToken  = "123456:ABCdefGHIjklMNOpqrSTUvwxYZ-runtime"
	openaiKey = "sk-test-runtime-0123456789abcdef"
)

// memPairing stands in for pairingd (pairingd itself is tested in services/integration).
type memPairing struct{}

func (memPairing) Request(context.Context, string, string, map[string]string) (policy.RequestResult, error) {
	return policy.RequestResult{Code: "ABCDEFGH", Created: true, ResendAllowed: true, ExpiresAt: time.Now().Add(time.Hour)}, nil
}
func (memPairing) IsAllowed(context.Context, string, string) (bool, error) { return false, nil }

// echoAgent answers "echo: <text>"; when gate is set it waits for it first.
type echoAgent struct{ gate chan struct{} }

func (e *echoAgent) Reply(ctx context.Context, t agent.Turn) (string, error) {
	if e.gate != nil {
		select {
		case <-e.gate:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	return "echo: " + t.Text, nil
}

func plainSecret(_ context.Context, s config.Secret) (string, error) {
	if s.State != config.StatePlain {
		return "", fmt.Errorf("%s: not set", s.Path)
	}
	return s.Plain, nil
}

func deps(t *testing.T, ag agent.Agent) Deps { return depsTB(t, ag) }

func depsTB(t testing.TB, ag agent.Agent) Deps {
	t.Helper()
	eng, err := policy.New(policy.EngineConfig{Pairing: memPairing{}})
	require.NoError(t, err)
	st, err := sessions.Open(filepath.Join(t.TempDir(), "sessions.json"), nil)
	require.NoError(t, err)
	return Deps{Engine: eng, Sessions: st, Echo: ag, ProbeTimeout: 2 * time.Second}
}

// cfg parses a config tree (JSON), as the config store would load it.
func cfg(t testing.TB, tree map[string]any) *config.Config {
	t.Helper()
	b, err := json.Marshal(tree)
	require.NoError(t, err)
	c, err := config.Parse("moltbot.json", b)
	require.NoError(t, err)
	return c
}

// base: the local channel allows alice, who owns it; echo backend.
func base() map[string]any {
	return map[string]any{
		"channels": map[string]any{
			"local": map[string]any{"enabled": true, "owner": []any{"alice"},
				"dm": map[string]any{"policy": "allowlist", "allowFrom": []any{"alice", "bob"}}},
		},
	}
}

func set(tree map[string]any, path string, v any) map[string]any {
	keys := strings.Split(path, ".")
	m := tree
	for _, k := range keys[:len(keys)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	m[keys[len(keys)-1]] = v
	return tree
}

func send(t testing.TB, m *Manager, from, text string) pipeline.Result {
	t.Helper()
	r, err := m.Current().Pipeline.SendLocal(context.Background(), pipeline.Message{From: from, Text: text, FromOwner: true})
	require.NoError(t, err)
	return r
}

func newManager(t *testing.T, d Deps, c *config.Config) *Manager {
	t.Helper()
	m, err := NewManager(context.Background(), d, c, plainSecret)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, m.Close(5*time.Second)) })
	return m
}

// TestReloadEachArea changes one top-level config area per row and shows
// its effect on the next message, in the same process, plus the reply line.
func TestReloadEachArea(t *testing.T) {
	fake := telegramtest.NewServer(botToken)
	defer fake.Close()
	oa, oaHandler := openaitest.NewServer(openaiKey)
	defer oa.Close()
	withOpenAI := func(model, key string) func(map[string]any) {
		return func(tree map[string]any) {
			set(tree, "agents.defaults.backend", "openai")
			set(tree, "models.providers.openai", map[string]any{"baseUrl": oa.URL + "/v1", "model": model, "apiKey": key})
		}
	}
	cases := []struct {
		name   string
		before func(map[string]any)
		change func(map[string]any)
		area   string
		// effect checks the manager before (false) and after (true) the reload.
		effect func(t *testing.T, m *Manager, after bool)
	}{
		{"channels: a new telegram channel starts", nil,
			func(tree map[string]any) {
				set(tree, "channels.telegram", map[string]any{"enabled": true, "botToken": botToken, "baseUrl": fake.URL(),
					"dm": map[string]any{"policy": "allowlist", "allowFrom": []any{"42"}}})
			},
			"channels.telegram: added",
			func(t *testing.T, m *Manager, after bool) {
				require.Equal(t, after, m.Current().Pipeline.HasChannel("telegram"))
				if after {
					n := len(fake.Sent())
					fake.SendDM(42, "carol", "hi bot")
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					got, err := fake.WaitSent(ctx, n+1)
					require.NoError(t, err)
					require.Equal(t, "echo: hi bot", got[len(got)-1].Text)
				}
			}},
		{"channels: dm policy and allowlist", nil,
			func(tree map[string]any) { set(tree, "channels.local.dm.allowFrom", []any{"alice"}) },
			"channels.local policies: dm allowlist (1 allowed)",
			func(t *testing.T, m *Manager, after bool) {
				r := send(t, m, "bob", "hello")
				require.Equal(t, !after, r.ReachedAgent, r.Decision)
				if after {
					require.Equal(t, policy.ReasonDMNotAllowed, r.Decision)
				}
			}},
		{"owners", nil,
			func(tree map[string]any) { set(tree, "channels.local.owner", []any{"bob"}) },
			"owners (channels.<ch>.owner): local=bob",
			func(t *testing.T, m *Manager, after bool) {
				r := send(t, m, "bob", "hello")
				require.True(t, r.ReachedAgent)
				require.Equal(t, after, r.Decision == policy.ReasonDMOwner, r.Decision)
			}},
		{"session.dmScope", nil,
			func(tree map[string]any) { set(tree, "session.dmScope", "per-peer") },
			"session.dmScope: per-peer",
			func(t *testing.T, m *Manager, after bool) {
				r := send(t, m, "alice", "hello")
				require.Equal(t, !after, r.SessionKey == "agent:main:main", r.SessionKey)
			}},
		{"agents.defaults.sandbox", nil,
			func(tree map[string]any) { set(tree, "agents.defaults.sandbox.mode", "all") },
			"agents.defaults.sandbox.mode: all",
			func(t *testing.T, m *Manager, after bool) {
				r := send(t, m, "alice", "hello")
				want := map[bool]string{false: "main", true: "hardened"}[after]
				for _, s := range m.Current().Pipeline.Sessions() {
					if s.Key == r.SessionKey {
						require.Equal(t, want, s.Profile)
						return
					}
				}
				t.Fatalf("session %s not indexed", r.SessionKey)
			}},
		{"agents.defaults.sandbox.docker", nil,
			func(tree map[string]any) { set(tree, "agents.defaults.sandbox.docker.memory", "512m") },
			"agents.defaults.sandbox (docker, workspace): applies to the next command",
			func(t *testing.T, m *Manager, after bool) {
				p, err := m.SandboxPolicy()
				require.NoError(t, err)
				require.Equal(t, map[bool]int64{false: 0, true: 512 << 20}[after], p.GetMemoryBytes())
			}},
		{"gateway.inbound: message concurrency", nil,
			func(tree map[string]any) {
				set(tree, "gateway.inbound", map[string]any{"workers": 2, "queuePerSession": 3})
			},
			"gateway.inbound: workers 2, queuePerSession 3, maxSessions 1024",
			func(t *testing.T, m *Manager, after bool) {
				want := map[bool]dispatch.Limits{false: {Workers: 16, QueueLen: 8, MaxQueues: 1024}, true: {Workers: 2, QueueLen: 3, MaxQueues: 1024}}[after]
				require.Equal(t, want, m.Current().Pipeline.Inbound())
				require.True(t, send(t, m, "alice", "hello").ReachedAgent)
			}},
		{"agents backend: echo to openai", nil, withOpenAI("gpt-a", openaiKey),
			"agent backend (agents.defaults.backend, models.providers): openai",
			func(t *testing.T, m *Manager, after bool) {
				r := send(t, m, "alice", "hello")
				require.Equal(t, map[bool]string{false: "echo: hello", true: "fake model (gpt-a): hello"}[after], strings.Join(r.Replies, "|"))
			}},
		{"models.providers: model and key", withOpenAI("gpt-a", "sk-wrong-key-000000000000"), withOpenAI("gpt-b", openaiKey),
			"agent backend (agents.defaults.backend, models.providers): openai (model \"gpt-b\"",
			func(t *testing.T, m *Manager, after bool) {
				r, err := m.Current().Pipeline.SendLocal(context.Background(), pipeline.Message{From: "alice", Text: "hello", FromOwner: true})
				if !after {
					require.Error(t, err, "the wrong key is refused by the provider")
					return
				}
				require.NoError(t, err)
				require.Equal(t, "fake model (gpt-b): hello", strings.Join(r.Replies, "|"))
				require.True(t, oaHandler.Requests()[len(oaHandler.Requests())-1].Authorized)
			}},
		{"models.providers: the key alone", withOpenAI("gpt-a", "sk-wrong-key-000000000000"), withOpenAI("gpt-a", openaiKey),
			"agent backend openai: API key changed",
			func(t *testing.T, m *Manager, after bool) {
				r, err := m.Current().Pipeline.SendLocal(context.Background(), pipeline.Message{From: "alice", Text: "hello", FromOwner: true})
				if !after {
					require.Error(t, err, "the wrong key is refused by the provider")
					return
				}
				require.NoError(t, err)
				require.Equal(t, "fake model (gpt-a): hello", strings.Join(r.Replies, "|"))
				require.True(t, oaHandler.Requests()[len(oaHandler.Requests())-1].Authorized)
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tree := base()
			if tc.before != nil {
				tc.before(tree)
			}
			m := newManager(t, deps(t, &echoAgent{}), cfg(t, tree))
			tc.effect(t, m, false)
			tree2 := base()
			if tc.before != nil {
				tc.before(tree2)
			}
			tc.change(tree2)
			changes, err := m.Apply(context.Background(), cfg(t, tree2), plainSecret)
			require.NoError(t, err)
			require.NotEmpty(t, changes)
			require.Contains(t, strings.Join(changes, "\n"), tc.area)
			for _, c := range changes {
				require.NotContains(t, c, botToken)
				require.NotContains(t, c, openaiKey)
			}
			tc.effect(t, m, true)
		})
	}
}

// TestFailedProvisionKeepsOld: a new runtime that cannot be built or
// started is stopped, and the old one keeps serving unchanged.
func TestFailedProvisionKeepsOld(t *testing.T) {
	fake := telegramtest.NewServer(botToken)
	defer fake.Close()
	tg := func(token, baseURL string) func(map[string]any) {
		return func(tree map[string]any) {
			set(tree, "channels.telegram", map[string]any{"enabled": true, "botToken": token, "baseUrl": baseURL,
				"dm": map[string]any{"policy": "allowlist", "allowFrom": []any{"42"}}})
		}
	}
	cases := []struct {
		name   string
		change func(map[string]any)
		want   string
	}{
		{"bot token the Bot API rejects", tg("999:WRONGtoken-abcdefghijklmnop", fake.URL()), "channels.telegram"},
		{"unreachable baseUrl", tg(botToken, "http://127.0.0.1:1"), "channels.telegram.baseUrl"},
		{"sandbox memory that is not a size", func(tree map[string]any) { set(tree, "agents.defaults.sandbox.docker.memory", "lots") }, "agents.defaults.sandbox.docker.memory"},
		{"invalid dm policy", func(tree map[string]any) { set(tree, "channels.local.dm.policy", "sometimes") }, "channels.local.dm.policy"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := newManager(t, deps(t, &echoAgent{}), cfg(t, base()))
			before := m.Current()
			polls := fake.Polls()
			tree := base()
			tc.change(tree)
			changes, err := m.Apply(context.Background(), cfg(t, tree), plainSecret)
			var pe *ProvisionError
			require.ErrorAs(t, err, &pe)
			require.Nil(t, changes)
			require.Contains(t, err.Error(), tc.want)
			require.Contains(t, err.Error(), "the running one keeps serving")
			require.NotContains(t, err.Error(), "WRONGtoken")
			require.Same(t, before, m.Current(), "the old runtime stays current")
			require.False(t, m.Current().Pipeline.HasChannel("telegram"))
			r := send(t, m, "bob", "still there?")
			require.True(t, r.ReachedAgent, "the old runtime (bob allowed) keeps answering")
			time.Sleep(200 * time.Millisecond)
			require.Equal(t, polls, fake.Polls(), "nothing of the new runtime polls")
		})
	}
}

// TestInFlightFinishesOnOldRuntime: a message that started before a reload
// gets its reply, on the runtime it started on; the next one uses the new.
func TestInFlightFinishesOnOldRuntime(t *testing.T) {
	ag := &echoAgent{gate: make(chan struct{})}
	m := newManager(t, deps(t, ag), cfg(t, base()))
	old := m.Current()
	var wg sync.WaitGroup
	var res pipeline.Result
	var sendErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		res, sendErr = old.Pipeline.SendLocal(context.Background(), pipeline.Message{From: "bob", Text: "slow", FromOwner: true})
	}()
	time.Sleep(100 * time.Millisecond) // the message is inside the agent
	tree := set(base(), "channels.local.dm.allowFrom", []any{"alice"})
	_, err := m.Apply(context.Background(), cfg(t, tree), plainSecret)
	require.NoError(t, err)
	require.NotSame(t, old, m.Current())
	close(ag.gate)
	wg.Wait()
	require.NoError(t, sendErr)
	require.Equal(t, []string{"echo: slow"}, res.Replies)
	r := send(t, m, "bob", "now?")
	require.False(t, r.ReachedAgent, "the new policy applies to the next message")
}

func TestNoChangeListsNothingAndRestartOnly(t *testing.T) {
	m := newManager(t, deps(t, &echoAgent{}), cfg(t, base()))
	changes, err := m.Apply(context.Background(), cfg(t, base()), plainSecret)
	require.NoError(t, err)
	require.Empty(t, changes)

	old := cfg(t, set(base(), "gateway.port", 18789)).View()
	next := cfg(t, set(base(), "gateway.port", 18790)).View()
	require.Empty(t, RestartOnly(old, old))
	got := RestartOnly(old, next)
	require.Len(t, got, 1)
	require.Contains(t, got[0], "docker compose restart gateway")
}

func TestBuildRefusesInboundOutOfRange(t *testing.T) {
	_, err := Build(context.Background(), deps(t, nil), cfg(t, set(base(), "gateway.inbound.workers", 5000)), plainSecret)
	require.ErrorIs(t, err, errs.ErrInvalidArgument)
	require.ErrorContains(t, err, "gateway.inbound.workers: 5000 is out of range; use 1..1024")
}

func TestBuildNeedsDeps(t *testing.T) {
	_, err := Build(context.Background(), Deps{}, nil, plainSecret)
	require.Error(t, err)
	_, err = NewManager(context.Background(), deps(t, nil), nil, nil)
	require.Error(t, err)
	require.False(t, errors.Is(err, errs.ErrInvalidArgument))
}
