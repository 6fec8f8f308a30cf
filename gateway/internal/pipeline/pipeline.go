// Package pipeline is the gateway's message path: a channel's inbound
// message -> the DM/group policy (pairingd) -> a session key -> the agent ->
// the reply through the same channel. It fails closed: when the policy
// cannot decide, or no agent is configured, nothing reaches an agent.
//
// Messages wait in one queue per session (package dispatch): a session's
// messages are processed in order, different sessions concurrently.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/moltbot/moltbot-secure/gateway/internal/agent"
	"github.com/moltbot/moltbot-secure/gateway/internal/channels"
	"github.com/moltbot/moltbot-secure/gateway/internal/channels/local"
	"github.com/moltbot/moltbot-secure/gateway/internal/dispatch"
	"github.com/moltbot/moltbot-secure/gateway/internal/policy"
	"github.com/moltbot/moltbot-secure/gateway/internal/sessions"
	"github.com/moltbot/moltbot-secure/services/errs"
	"github.com/moltbot/moltbot-secure/services/sessionkey"
)

// DefaultAgentID is the agent every message goes to (upstream's default).
const DefaultAgentID = "main"

// DefaultAgentTimeout bounds one agent reply.
const DefaultAgentTimeout = 2 * time.Minute

// BusyReply is what a sender gets when their session's queue is full.
const BusyReply = "Busy: too many of your messages are waiting. Try again in a moment."

// DecisionBusy is Result.Decision for a message refused with BusyReply.
const DecisionBusy = "busy"

// Channel is one configured channel with its policy.
type Channel struct {
	Channel channels.Channel
	Policy  policy.Config
}

// Config holds the pipeline's dependencies.
type Config struct {
	Engine   *policy.Engine   // required
	Channels []Channel        // at least the local channel
	Agent    agent.Agent      // nil: allowed messages are refused with an error
	Sessions *sessions.Store  // required
	AgentID  string           // "" = DefaultAgentID
	DMScope  sessions.DMScope // "" = main
	// Owners are the owner's own sender ids per channel (channels.<ch>.owner):
	// only their DMs fold into the main session; SetOwners replaces them
	// on reload.
	Owners map[string][]string
	// SandboxMode is agents.defaults.sandbox.mode (non-main | off | all), for
	// the session index's "profile" column.
	SandboxMode  string
	AgentTimeout time.Duration
	// Inbound bounds concurrent processing (gateway.inbound.*): messages of
	// one session run in order, different sessions concurrently.
	Inbound dispatch.Limits
	Logger  hclog.Logger
	// OnDecision, when set, records each decision (the security log);
	// it gets no message text.
	OnDecision func(ctx context.Context, in channels.Inbound, r Result)
}

// Result is what happened to one inbound message.
type Result struct {
	Decision     string // policy reason
	ReachedAgent bool
	SessionKey   string
	Replies      []string // for the local channel: the replies the sender got
}

// Pipeline processes inbound messages. Safe for concurrent use.
type Pipeline struct {
	engine     *policy.Engine
	chans      map[string]Channel
	agent      agent.Agent
	sessions   *sessions.Store
	agentID    string
	scope      sessions.DMScope
	sandbox    atomic.Pointer[string]
	timeout    time.Duration
	log        hclog.Logger
	onDecision func(context.Context, channels.Inbound, Result)
	disp       *dispatch.Dispatcher

	owners atomic.Pointer[map[string][]string]

	mu   sync.Mutex
	down map[string]error // channels whose Start failed
}

// New builds a Pipeline.
func New(cfg Config) (*Pipeline, error) {
	if cfg.Engine == nil || cfg.Sessions == nil {
		return nil, errors.New("pipeline: Config.Engine and Config.Sessions are required")
	}
	p := &Pipeline{
		engine: cfg.Engine, chans: map[string]Channel{}, agent: cfg.Agent, sessions: cfg.Sessions,
		agentID: cfg.AgentID, scope: cfg.DMScope, timeout: cfg.AgentTimeout,
		log: cfg.Logger, onDecision: cfg.OnDecision, down: map[string]error{},
	}
	if p.agentID == "" {
		p.agentID = DefaultAgentID
	}
	if p.scope == "" {
		p.scope = sessions.ScopeMain
	}
	if p.timeout <= 0 {
		p.timeout = DefaultAgentTimeout
	}
	if p.log == nil {
		p.log = hclog.NewNullLogger()
	}
	d, err := dispatch.New(cfg.Inbound)
	if err != nil {
		return nil, err
	}
	p.disp = d
	p.SetOwners(cfg.Owners)
	p.SetSandboxMode(cfg.SandboxMode)
	for _, c := range cfg.Channels {
		if c.Channel == nil {
			return nil, errors.New("pipeline: nil channel")
		}
		name := c.Channel.Name()
		if err := c.Policy.Validate(name); err != nil {
			return nil, err
		}
		if _, dup := p.chans[name]; dup {
			return nil, fmt.Errorf("pipeline: channel %q configured twice", name)
		}
		p.chans[name] = c
	}
	return p, nil
}

// Start runs every channel until ctx ends, then waits until every queued
// message is processed (a reload's old runtime finishes its queues). A
// channel that cannot run is logged and reported by Channels; the others
// keep going.
func (p *Pipeline) Start(ctx context.Context) {
	var wg sync.WaitGroup
	for _, c := range p.chans {
		wg.Add(1)
		go func(c channels.Channel) {
			defer wg.Done()
			if err := c.Start(ctx, p.Deliver); err != nil {
				p.log.Error("channel stopped", "channel", c.Name(), "error", err)
				p.mu.Lock()
				p.down[c.Name()] = err
				p.mu.Unlock()
			}
		}(c.Channel)
	}
	wg.Wait()
	p.disp.Close()
	if err := p.sessions.Flush(); err != nil {
		p.log.Error("flush session index", "error", err)
	}
}

type resultKey struct{}

type holder struct {
	res Result
	err error
}

// Deliver is the channels.DeliverFunc: it queues in on its session's queue
// and returns; the message is processed after the session's earlier ones,
// concurrently with other sessions, and failures are logged (a chat network
// has no one to return an error to). A full queue is answered with
// BusyReply, never dropped silently. ack (may be nil) is called once the
// message is finished, or with false when the pipeline is stopping.
func (p *Pipeline) Deliver(ctx context.Context, in channels.Inbound, ack channels.Ack) {
	if ack == nil {
		ack = func(bool) {}
	}
	if in.ChatID == "" {
		in.ChatID = in.SenderID
	}
	// A queued message finishes even when its runtime stops receiving (a
	// reload): only the agent timeout and a send bound bound it.
	jctx := context.WithoutCancel(ctx)
	err := p.disp.Submit(p.QueueKey(in), func() {
		p.process(jctx, in)
		ack(true)
	})
	switch {
	case err == nil:
	case errors.Is(err, dispatch.ErrBusy):
		p.busy(jctx, in)
		ack(true)
	default:
		p.log.Warn("inbound message not queued", "channel", in.Channel, "error", err)
		ack(false)
	}
}

// QueueKey is the queue a message waits in: its session key
// (services/sessionkey), so one session's messages keep their order.
func (p *Pipeline) QueueKey(in channels.Inbound) string {
	return in.Channel + "|" + p.turn(in).SessionKey
}

func (p *Pipeline) process(ctx context.Context, in channels.Inbound) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout+time.Minute)
	defer cancel()
	res, err := p.Process(ctx, in)
	p.report(ctx, res, err)
	if err != nil {
		p.log.Warn("inbound message not delivered", "channel", in.Channel, "decision", res.Decision, "error", err)
	}
}

// busy tells the sender their session's queue is full. The policy has not
// run, so the reply says nothing else.
func (p *Pipeline) busy(ctx context.Context, in channels.Inbound) {
	res := Result{Decision: DecisionBusy}
	err := fmt.Errorf("session queue full (gateway.inbound.queuePerSession %d, maxSessions %d); the sender was told to try again: %w",
		p.disp.Limits().QueueLen, p.disp.Limits().MaxQueues, errs.ErrResourceExhausted)
	p.log.Warn("inbound message refused: busy", "channel", in.Channel)
	if c, ok := p.chans[in.Channel]; ok {
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		if serr := c.Channel.Send(sctx, in.ChatID, BusyReply); serr != nil {
			p.log.Warn("busy reply not sent", "channel", in.Channel, "error", serr)
		}
		cancel()
	}
	if p.onDecision != nil {
		p.onDecision(ctx, in, res)
	}
	p.report(ctx, res, err)
}

// report hands the outcome to a waiting SendLocal.
func (p *Pipeline) report(ctx context.Context, res Result, err error) {
	if h, ok := ctx.Value(resultKey{}).(*holder); ok {
		h.res, h.err = res, err
	}
}

// Process runs one message: policy, then the agent, replying through the
// message's channel. Errors: errs.ErrInvalidArgument for bad input (nothing
// stored), errs.ErrUnavailable when pairingd cannot be asked,
// errs.ErrFailedPrecondition when no agent is configured.
func (p *Pipeline) Process(ctx context.Context, in channels.Inbound) (Result, error) {
	c, ok := p.chans[in.Channel]
	if !ok {
		return Result{}, fmt.Errorf("channel %q is not configured (configured: %s): %w", in.Channel, strings.Join(p.names(), ", "), errs.ErrInvalidArgument)
	}
	if in.ChatID == "" {
		in.ChatID = in.SenderID
	}
	pol := c.Policy
	pol.Owners = p.ownersOf(in.Channel)
	d, err := p.engine.Decide(ctx, pol, in)
	res := Result{Decision: d.Reason}
	defer func() {
		if p.onDecision != nil {
			p.onDecision(ctx, in, res)
		}
	}()
	if err != nil {
		if errors.Is(err, errs.ErrInvalidArgument) {
			return res, err
		}
		return res, fmt.Errorf("%s: %w", err.Error(), errs.ErrUnavailable)
	}
	if d.Reply != "" {
		if err := c.Channel.Send(ctx, in.ChatID, d.Reply); err != nil {
			return res, fmt.Errorf("reply on %s: %w", in.Channel, err)
		}
	}
	if !d.Deliver {
		return res, nil
	}
	if p.agent == nil {
		return res, fmt.Errorf("no agent is configured, so the message was not delivered (the gateway was built without one): %w", errs.ErrFailedPrecondition)
	}
	t := p.turn(in)
	res.SessionKey = t.SessionKey
	if err := p.sessions.Touch(sessions.Session{
		Key: t.SessionKey, AgentID: t.AgentID, Channel: in.Channel, Main: t.Main, Sandboxed: true,
		Profile: agent.ProfileName(agent.ChooseProfile(agent.ParseMode(*p.sandbox.Load()), t.SessionKey, t.Owner).Profile),
	}); err != nil {
		p.log.Error("session index", "error", err) // the message still goes through
	}
	actx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	reply, err := p.agent.Reply(actx, t)
	if err != nil {
		return res, fmt.Errorf("agent %s: %w", t.AgentID, err)
	}
	res.ReachedAgent = true
	if strings.TrimSpace(reply) == "" {
		return res, nil
	}
	if err := c.Channel.Send(ctx, in.ChatID, reply); err != nil {
		return res, fmt.Errorf("reply on %s: %w", in.Channel, err)
	}
	return res, nil
}

// Inbound returns the concurrency limits in force (gateway.inbound.*).
func (p *Pipeline) Inbound() dispatch.Limits { return p.disp.Limits() }

// SetSandboxMode replaces agents.defaults.sandbox.mode (a reload) for the
// session index's profile column.
func (p *Pipeline) SetSandboxMode(mode string) { p.sandbox.Store(&mode) }

// SetOwners replaces the owner ids per channel (a reload's new
// channels.<ch>.owner); the next message uses them.
func (p *Pipeline) SetOwners(owners map[string][]string) {
	m := make(map[string][]string, len(owners))
	for ch, ids := range owners {
		m[ch] = append([]string(nil), ids...)
	}
	p.owners.Store(&m)
}

func (p *Pipeline) ownersOf(channel string) []string {
	if m := p.owners.Load(); m != nil {
		return (*m)[channel]
	}
	return nil
}

// isOwner is policy.IsOwner with the channel's current owner ids.
func (p *Pipeline) isOwner(in channels.Inbound) bool {
	return policy.IsOwner(p.ownersOf(in.Channel), in)
}

func (p *Pipeline) turn(in channels.Inbound) agent.Turn {
	t := agent.Turn{AgentID: p.agentID, Channel: in.Channel, SenderID: in.SenderID, Text: in.Text, Owner: p.isOwner(in)}
	if in.IsDM() {
		t.SessionKey, t.Main = sessionkey.DM(p.agentID, p.scope, in.Channel, in.SenderID, t.Owner)
	} else {
		t.SessionKey = sessionkey.Group(p.agentID, in.Channel, in.GroupID)
	}
	return t
}

func (p *Pipeline) names() []string {
	out := make([]string, 0, len(p.chans))
	for n := range p.chans {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Message is one message for the local channel's Send.
type Message struct {
	From    string
	GroupID string
	Text    string
	// FromOwner says the caller is the owner principal. On the local
	// channel the caller picks the sender id, so only the owner may send
	// as one of channels.local.owner: a client holding the shared gateway
	// token must never reach the owner's main session and workspace.
	FromOwner bool
}

// SendLocal runs m through the pipeline as a local-channel message and
// returns what happened, with every reply the sender got (including any
// left for them earlier, such as an approval notice).
func (p *Pipeline) SendLocal(ctx context.Context, m Message) (Result, error) {
	c, ok := p.chans[local.Name]
	lc, isLocal := c.Channel.(*local.Channel)
	if !ok || !isLocal {
		return Result{}, fmt.Errorf("the local channel is not running: %w", errs.ErrUnavailable)
	}
	if strings.TrimSpace(m.From) == "" {
		return Result{}, fmt.Errorf("from: the sender is empty; pass --from <name>: %w", errs.ErrInvalidArgument)
	}
	if strings.TrimSpace(m.Text) == "" {
		return Result{}, fmt.Errorf("text: the message is empty: %w", errs.ErrInvalidArgument)
	}
	chat := m.From
	if m.GroupID != "" {
		chat = m.GroupID
	}
	if !m.FromOwner && policy.IsOwner(p.ownersOf(local.Name), channels.Inbound{Channel: local.Name, SenderID: m.From, ChatID: chat, GroupID: m.GroupID}) {
		return Result{}, fmt.Errorf("from: %q is an owner of the local channel (channels.local.owner); only the owner's CLI may send as the owner: %w", m.From, errs.ErrPermissionDenied)
	}
	earlier := lc.Drain(chat)
	h := &holder{}
	replies, err := lc.Inject(context.WithValue(ctx, resultKey{}, h), channels.Inbound{
		SenderID: m.From, ChatID: chat, GroupID: m.GroupID, Text: m.Text,
	})
	if err != nil {
		return Result{}, err
	}
	if h.err != nil {
		return h.res, h.err
	}
	h.res.Replies = append(earlier, replies...)
	return h.res, nil
}

// Notify sends text to a sender's DM chat on channel (the approval notice).
func (p *Pipeline) Notify(ctx context.Context, channel, senderID, text string) error {
	c, ok := p.chans[channel]
	if !ok {
		return fmt.Errorf("channel %q is not configured: %w", channel, errs.ErrInvalidArgument)
	}
	return c.Channel.Send(ctx, senderID, text)
}

// HasChannel reports whether name is a configured channel.
func (p *Pipeline) HasChannel(name string) bool { _, ok := p.chans[name]; return ok }

// Policy returns channel's policy with its current owners, as Process
// applies it (for `pairing list --allowed`).
func (p *Pipeline) Policy(channel string) (policy.Config, bool) {
	c, ok := p.chans[channel]
	if !ok {
		return policy.Config{}, false
	}
	pol := c.Policy
	pol.Owners = p.ownersOf(channel)
	return pol, true
}

// LetThrough says whether an approved sender's DMs on channel pass this
// pipeline's policy, and if not why (policy.LetThrough); ok is false for a
// channel it does not run.
func (p *Pipeline) LetThrough(channel, senderID string) (through bool, because string, ok bool) {
	pol, ok := p.Policy(channel)
	if !ok {
		return false, "", false
	}
	through, because = policy.LetThrough(pol, channel, senderID)
	return through, because, true
}

// ChannelNames lists the configured channels, sorted.
func (p *Pipeline) ChannelNames() []string { return p.names() }

// ChannelState is one channel's status.
type ChannelState struct {
	Name        string
	Connected   bool
	Err         error
	LastOK      time.Time // channels.State.LastOK; zero when not reported
	NextRetry   time.Time // channels.State.NextRetry
	DMPolicy    string
	GroupPolicy string
}

// Channels reports every configured channel.
func (p *Pipeline) Channels() []ChannelState {
	var out []ChannelState
	for _, n := range p.names() {
		c := p.chans[n]
		ok, err := c.Channel.Status()
		var st channels.State
		if sr, isSR := c.Channel.(channels.StateReporter); isSR {
			st = sr.State()
			ok, err = st.Connected, st.Err
		}
		p.mu.Lock()
		if e := p.down[n]; e != nil {
			ok, err = false, e
		}
		p.mu.Unlock()
		dm, grp := string(c.Policy.DMPolicy), string(c.Policy.GroupPolicy)
		if dm == "" {
			dm = string(policy.DMPairing)
		}
		if grp == "" {
			grp = string(policy.GroupAllowlist)
		}
		out = append(out, ChannelState{Name: n, Connected: ok, Err: err, LastOK: st.LastOK, NextRetry: st.NextRetry, DMPolicy: dm, GroupPolicy: grp})
	}
	return out
}

// Sessions lists the session index.
func (p *Pipeline) Sessions() []sessions.Session { return p.sessions.List() }
