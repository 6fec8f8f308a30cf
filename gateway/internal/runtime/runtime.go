// Package runtime is the gateway's message runtime built from ONE config
// snapshot: the channels and their accounts, the DM/group policies and
// allowlists, the owners, the agent backend, the sandbox mode and the DM
// scope. A reload builds the next Runtime, starts it, swaps it in and
// stops the old one (STYLE.md 4b, the Caddy model); when the build or the
// start fails, the old one keeps serving and nothing is half-applied.
package runtime

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"

	"github.com/moltbot/moltbot-secure/gateway/internal/agent"
	"github.com/moltbot/moltbot-secure/gateway/internal/channels"
	"github.com/moltbot/moltbot-secure/gateway/internal/channels/local"
	"github.com/moltbot/moltbot-secure/gateway/internal/channels/telegram"
	"github.com/moltbot/moltbot-secure/gateway/internal/dispatch"
	"github.com/moltbot/moltbot-secure/gateway/internal/inbox"
	"github.com/moltbot/moltbot-secure/gateway/internal/pipeline"
	"github.com/moltbot/moltbot-secure/gateway/internal/policy"
	"github.com/moltbot/moltbot-secure/gateway/internal/sessions"
	sandboxv1 "github.com/moltbot/moltbot-secure/proto/sandbox/v1"
	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// OpenAIProvider is the models.providers entry the openai backend reads.
const OpenAIProvider = "openai"

const backendArea = "agent backend (agents.defaults.backend, models.providers)"

// DefaultProbeTimeout bounds a new channel's account check (Telegram getMe).
const DefaultProbeTimeout = 10 * time.Second

// Deps are what every runtime shares: they live as long as the process.
type Deps struct {
	Engine   *policy.Engine  // required
	Sessions *sessions.Store // required
	// Echo is the echo backend (its exec tool goes through the sandbox);
	// Executor runs the openai backend's exec tool.
	Echo     agent.Agent
	Executor agent.Executor
	// NewChannel builds a channel other than local; nil builds the
	// supported ones (telegram). Tests substitute fakes.
	NewChannel   func(name string, ch config.Channel, secret string) (channels.Channel, error)
	OnDecision   func(ctx context.Context, in channels.Inbound, r pipeline.Result)
	Logger       hclog.Logger
	ProbeTimeout time.Duration
	// Inbox is the durable inbound queue the polling channels (telegram)
	// store updates in before confirming them; it outlives every runtime.
	Inbox *inbox.Inbox
}

// Prober is a channel that can check its account before it starts (a
// wrong bot token or an unreachable Bot API fails the reload, not later).
type Prober interface {
	Probe(ctx context.Context) error
}

// Runtime is one config snapshot's message runtime.
type Runtime struct {
	Pipeline *pipeline.Pipeline
	local    *local.Channel
	chans    []channels.Channel
	areas    map[string]area
	// sandbox is agents.defaults.sandbox as sandboxd gets it with every
	// command; sandboxErr refuses every command (fail closed).
	sandbox    *sandboxv1.Policy
	sandboxErr error

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// area is one reload-visible part of the runtime: key compares (it may
// hold a hash of a secret, never shown), desc is what the reply says.
// secretOnly, when set, is the reply's line for a change of the secret
// alone (key differs only in its fingerprint part, after public).
type area struct{ key, desc, public, secretOnly string }

// SecretFunc returns a secret field's plaintext from the snapshot being
// built (decrypted through secretsd or resolved); never logged.
type SecretFunc func(ctx context.Context, s config.Secret) (string, error)

// Build makes the runtime of c (nil: no config file, the local channel
// with the defaults). It starts nothing. Errors name the field and the fix.
func Build(ctx context.Context, d Deps, c *config.Config, secret SecretFunc) (*Runtime, error) {
	if d.Engine == nil || d.Sessions == nil {
		return nil, errors.New("runtime: Deps.Engine and Deps.Sessions are required")
	}
	log := d.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	v := config.View{Channels: map[string]config.Channel{}}
	scopeText := ""
	if c != nil {
		if err := channelProblems(c); err != nil {
			return nil, err
		}
		v = c.View()
		scopeText = dmScope(c)
	}
	scope, err := sessions.ParseDMScope(scopeText)
	if err != nil {
		return nil, fmt.Errorf("session.dmScope: %w", err)
	}
	r := &Runtime{local: local.New(), areas: map[string]area{}}
	chans := []pipeline.Channel{{Channel: r.local, Policy: PolicyOf(v.Channels[local.Name])}}
	r.chans = append(r.chans, r.local)
	for _, name := range slices.Sorted(maps.Keys(v.Channels)) {
		ch := v.Channels[name]
		if name == local.Name || !ch.Enabled {
			continue
		}
		if d.NewChannel == nil && name != "telegram" {
			// Known to the config (upstream has it), not run here: said, not fatal.
			log.Warn("channel not supported by this gateway; ignored", "channel", "channels."+name)
			r.areas["channels."+name] = area{key: "unsupported", desc: "configured, not run by this gateway"}
			continue
		}
		tok, err := secret(ctx, ch.BotToken)
		if err != nil {
			return nil, fmt.Errorf("channels.%s: %w", name, err)
		}
		nc := d.NewChannel
		if nc == nil {
			nc = func(name string, ch config.Channel, tok string) (channels.Channel, error) {
				return newSupported(name, ch, tok, d.Inbox, log)
			}
		}
		built, err := nc(name, ch, tok)
		if err != nil {
			return nil, fmt.Errorf("channels.%s: %w", name, err)
		}
		if built == nil {
			log.Warn("channel not supported by this gateway; ignored", "channel", "channels."+name)
			continue
		}
		chans = append(chans, pipeline.Channel{Channel: built, Policy: PolicyOf(ch)})
		r.chans = append(r.chans, built)
		r.areas["channels."+name] = area{key: "on|" + ch.BaseURL + "|" + fingerprint(tok), desc: "running" + endpoint(ch.BaseURL)}
	}
	for _, c := range chans {
		r.areas["channels."+c.Channel.Name()+" policies"] = area{key: policyKey(c.Policy), desc: describePolicy(c.Policy)}
	}
	owners := OwnersOf(v)
	r.areas["owners (channels.<ch>.owner)"] = area{key: ownersKey(owners), desc: ownersKey(owners)}
	choice, err := ChooseBackend(ctx, v, secret)
	if err != nil {
		return nil, err
	}
	r.areas[backendArea] = area{key: choice.key(), desc: choice.Describe(), public: choice.public(),
		secretOnly: "agent backend " + choice.Name + ": API key changed"}
	r.areas["agents.defaults.sandbox.mode"] = area{key: v.Agents.Sandbox.Mode, desc: cmp.Or(v.Agents.Sandbox.Mode, "non-main")}
	pc := c
	if pc == nil {
		pc = config.New("", nil)
	}
	r.sandbox, r.sandboxErr = agent.PolicyFromConfig(pc)
	r.areas["agents.defaults.sandbox (docker, workspace)"] = area{key: sandboxKey(r.sandbox, r.sandboxErr),
		desc: "applies to the next command (sandboxd recreates a container whose policy changed)"}
	r.areas["session.dmScope"] = area{key: string(scope), desc: string(scope)}
	lim, err := dispatch.Limits{Workers: v.Gateway.Inbound.Workers, QueueLen: v.Gateway.Inbound.QueuePerSession,
		MaxQueues: v.Gateway.Inbound.MaxSessions}.WithDefaults()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", err, errs.ErrInvalidArgument)
	}
	inb := fmt.Sprintf("workers %d, queuePerSession %d, maxSessions %d", lim.Workers, lim.QueueLen, lim.MaxQueues)
	r.areas["gateway.inbound"] = area{key: inb, desc: inb}
	p, err := pipeline.New(pipeline.Config{
		Engine: d.Engine, Channels: chans, Agent: choice.agent(d), Sessions: d.Sessions, Inbound: lim,
		DMScope: scope, SandboxMode: v.Agents.Sandbox.Mode, Owners: owners,
		Logger: log.Named("pipeline"), OnDecision: d.OnDecision,
	})
	if err != nil {
		return nil, err
	}
	r.Pipeline = p
	return r, nil
}

// newSupported builds the channels this gateway runs; nil, nil for others.
func newSupported(name string, ch config.Channel, tok string, q *inbox.Inbox, log hclog.Logger) (channels.Channel, error) {
	if name != "telegram" {
		return nil, nil
	}
	l := log.Named(name)
	return telegram.New(telegram.Config{
		Token: tok, Name: name, BaseURL: ch.BaseURL, Inbox: q,
		Logf: func(f string, a ...any) { l.Warn(fmt.Sprintf(f, a...)) },
	})
}

// SandboxPolicy is this runtime's agents.defaults.sandbox for sandboxd.
func (r *Runtime) SandboxPolicy() (*sandboxv1.Policy, error) { return r.sandbox, r.sandboxErr }

// sandboxKey compares policies without the mode (its own area).
func sandboxKey(p *sandboxv1.Policy, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	q := proto.Clone(p).(*sandboxv1.Policy)
	q.Mode = 0
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(q)
	return hex.EncodeToString(b)
}

// Start checks every channel's account (Prober), then runs the channels
// until Stop. A failed check starts nothing and returns why; with lenient
// (the process's first runtime, so the CLI stays reachable) it is only
// logged and the channel keeps retrying, shown as down in `status --all`.
func (r *Runtime) Start(ctx context.Context, probeTimeout time.Duration, lenient bool, log hclog.Logger) error {
	if probeTimeout <= 0 {
		probeTimeout = DefaultProbeTimeout
	}
	for _, c := range r.chans {
		if p, ok := c.(Prober); ok {
			pctx, cancel := context.WithTimeout(ctx, probeTimeout)
			err := p.Probe(pctx)
			cancel()
			if err != nil && !lenient {
				return fmt.Errorf("channels.%s: %w", c.Name(), err)
			}
			if err != nil && log != nil {
				log.Warn("channel account check failed; the channel keeps retrying", "channel", c.Name(), "error", err)
			}
		}
	}
	// The runtime outlives the request that started it (a Reload RPC).
	run, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.cancel, r.done = cancel, make(chan struct{})
	go func() {
		defer close(r.done)
		r.Pipeline.Start(run)
	}()
	select {
	case <-r.local.Running():
		return nil
	case <-r.done:
		return errors.New("channels.local: the local channel stopped as it started")
	}
}

// Stop ends the channels' receiving and waits until every message in
// flight finished on this runtime. Safe to call more than once, and on a
// runtime that never started.
func (r *Runtime) Stop() {
	r.once.Do(func() {
		if r.cancel == nil {
			return
		}
		r.cancel()
		<-r.done
	})
}

// stopReceiving cancels the channels without waiting (Stop waits).
func (r *Runtime) stopReceiving() {
	if r.cancel != nil {
		r.cancel()
	}
}

// Changes lists, per area, what differs from old to r (old nil: nothing).
func (r *Runtime) Changes(old *Runtime) []string {
	if old == nil {
		return nil
	}
	var out []string
	for _, k := range unionKeys(old.areas, r.areas) {
		a, inOld := old.areas[k]
		b, inNew := r.areas[k]
		switch {
		case !inOld:
			out = append(out, k+": added ("+b.desc+")")
		case !inNew:
			out = append(out, k+": removed")
		case a.key != b.key && b.secretOnly != "" && a.public == b.public:
			out = append(out, b.secretOnly)
		case a.key != b.key:
			out = append(out, k+": "+b.desc)
		}
	}
	return out
}

// channelProblems refuses an invalid channel or session setting (dm.policy
// "open" among them), naming the field and the fix.
func channelProblems(c *config.Config) error {
	var msgs []string
	for _, p := range config.Errors(c.Validate()) {
		if strings.HasPrefix(p.Path, "channels.") || strings.HasPrefix(p.Path, "session.") {
			msgs = append(msgs, p.String())
		}
	}
	if len(msgs) > 0 {
		return fmt.Errorf("invalid config:\n  %s\n(check with `moltbot config validate`): %w",
			strings.Join(msgs, "\n  "), errs.ErrInvalidArgument)
	}
	return nil
}

func dmScope(c *config.Config) string {
	if s, ok := c.Raw["session"].(map[string]any); ok {
		if v, ok := s["dmScope"].(string); ok {
			return v
		}
	}
	return ""
}

// PolicyOf is a channel's DM/group policy and allowlists.
func PolicyOf(ch config.Channel) policy.Config {
	return policy.Config{
		DMPolicy: policy.DMPolicy(ch.DM.Policy), DMAllowFrom: ch.DM.AllowFrom,
		GroupPolicy: policy.GroupPolicy(ch.Groups.Policy), GroupAllowFrom: ch.Groups.AllowFrom,
	}
}

func policyKey(p policy.Config) string {
	return fmt.Sprintf("%s|%q|%s|%q", p.DMPolicy, p.DMAllowFrom, p.GroupPolicy, p.GroupAllowFrom)
}

func describePolicy(p policy.Config) string {
	return fmt.Sprintf("dm %s (%d allowed), groups %s (%d allowed)",
		cmp.Or(string(p.DMPolicy), string(policy.DMPairing)), len(p.DMAllowFrom),
		cmp.Or(string(p.GroupPolicy), string(policy.GroupAllowlist)), len(p.GroupAllowFrom))
}

// OwnersOf is channels.<ch>.owner for every channel.
func OwnersOf(v config.View) map[string][]string {
	m := map[string][]string{}
	for name, ch := range v.Channels {
		if len(ch.Owner) > 0 {
			m[name] = ch.Owner
		}
	}
	return m
}

func ownersKey(m map[string][]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%s", k, strings.Join(m[k], ",")))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "; ")
}

// fingerprint lets a reload see that a secret changed without keeping or
// showing it.
func fingerprint(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:8])
}

func endpoint(base string) string {
	if base == "" {
		return ""
	}
	if u, err := url.Parse(base); err == nil {
		u.User, u.RawQuery = nil, ""
		base = u.String()
	}
	return " at " + base
}

func unionKeys(a, b map[string]area) []string {
	m := map[string]area{}
	for k, v := range a {
		m[k] = v
	}
	for k, v := range b {
		m[k] = v
	}
	return slices.Sorted(maps.Keys(m))
}
