package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"

	"github.com/moltbot/moltbot-secure/gateway/internal/api"
	"github.com/moltbot/moltbot-secure/gateway/internal/channels"
	"github.com/moltbot/moltbot-secure/gateway/internal/channels/local"
	"github.com/moltbot/moltbot-secure/gateway/internal/channels/telegram"
	"github.com/moltbot/moltbot-secure/gateway/internal/configstore"
	"github.com/moltbot/moltbot-secure/gateway/internal/pairingproxy"
	"github.com/moltbot/moltbot-secure/gateway/internal/pipeline"
	"github.com/moltbot/moltbot-secure/gateway/internal/policy"
	"github.com/moltbot/moltbot-secure/gateway/internal/sessions"
	pairingv1 "github.com/moltbot/moltbot-secure/proto/pairing/v1"
	secretsv1 "github.com/moltbot/moltbot-secure/proto/secrets/v1"
	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/errs"
	"github.com/moltbot/moltbot-secure/services/seclog"
)

// wireMessaging starts the channels and the DM/group policy pipeline, and
// registers the pairing admin proxy for the CLI.
func wireMessaging(ctx context.Context, w *Wiring) error {
	cfg, err := messagingConfig(w)
	if err != nil {
		return err
	}
	v := config.View{Channels: map[string]config.Channel{}}
	if snap := w.snapshot(); snap != nil {
		v = snap.View
	} else if cfg != nil {
		v = cfg.View()
	}
	if cfg != nil {
		if err := channelProblems(cfg); err != nil {
			return err
		}
	}
	scope, err := sessions.ParseDMScope(dmScope(cfg))
	if err != nil {
		return fmt.Errorf("config %s: %w", w.ConfigPath, err)
	}
	pc := pairingv1.NewPairingClient(w.PairingConn)
	engine, err := policy.New(policy.EngineConfig{Pairing: policy.GRPCPairing{C: pc}})
	if err != nil {
		return err
	}
	chans := []pipeline.Channel{{Channel: local.New(), Policy: policyOf(v.Channels[local.Name])}}
	for _, name := range sortedChannels(v.Channels) {
		ch := v.Channels[name]
		switch {
		case name == local.Name || !ch.Enabled:
		case name == "telegram":
			tok, err := secretValue(ctx, w, ch.BotToken)
			if err != nil {
				return fmt.Errorf("config %s: %w", w.ConfigPath, err)
			}
			log := w.Logger.Named("telegram")
			bot, err := telegram.New(telegram.Config{
				Token: tok, BaseURL: ch.BaseURL,
				Logf: func(f string, a ...any) { log.Warn(fmt.Sprintf(f, a...)) },
			})
			if err != nil {
				return fmt.Errorf("config %s: channels.telegram: %w", w.ConfigPath, err)
			}
			chans = append(chans, pipeline.Channel{Channel: bot, Policy: policyOf(ch)})
		default:
			w.Logger.Warn("channel not supported by this gateway; ignored", "channel", "channels."+name)
		}
	}
	st, err := sessions.Open(sessions.Path(w.StateDir), nil)
	if err != nil {
		return err
	}
	if w.Agent == nil {
		w.Logger.Warn("no agent is wired: allowed messages will be refused, not answered")
	}
	p, err := pipeline.New(pipeline.Config{
		Engine: engine, Channels: chans, Agent: w.Agent, Sessions: st,
		DMScope: scope, SandboxMode: v.Agents.Sandbox.Mode, Logger: w.Logger.Named("pipeline"),
		Owners: ownersOf(v),
		OnDecision: func(_ context.Context, in channels.Inbound, r pipeline.Result) {
			if w.SecLog != nil && !r.ReachedAgent && r.Decision != "" {
				w.SecLog.Note(seclog.Event{Kind: "message.blocked", Actor: in.Channel + ":" + in.SenderID,
					Target: in.Channel, Fields: map[string]string{"decision": r.Decision}})
			}
		},
	})
	if err != nil {
		return fmt.Errorf("config %s: %w", w.ConfigPath, err)
	}
	proxy, err := pairingproxy.New(pairingproxy.Config{
		Client: pc, HasChannel: p.HasChannel, Log: w.SecLog, Logger: w.Logger.Named("pairing"),
		LetThrough: func(channel, sender string) (bool, string, bool) {
			pol, ok := p.Policy(channel)
			if !ok {
				return false, "", false
			}
			through, because := policy.LetThrough(pol, channel, sender)
			return through, because, true
		},
		Notify: func(ctx context.Context, channel, sender string) error {
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			return p.Notify(ctx, channel, sender, policy.ApprovedNotice)
		},
		AddOwner: func(ctx context.Context, channel, sender string) error { return addOwner(ctx, w, channel, sender) },
	})
	if err != nil {
		return err
	}
	// channels.<ch>.owner applies on reload (pairing approve --owner writes it).
	owners := ownersOf(v)
	w.OnReload = append(w.OnReload, func(_ context.Context, snap *configstore.Snapshot) []string {
		next := ownersOf(snap.View)
		p.SetOwners(next)
		p.SetSandboxMode(snap.View.Agents.Sandbox.Mode)
		if reflect.DeepEqual(owners, next) {
			return nil
		}
		owners = next
		return []string{"channel owners (channels.<ch>.owner)"}
	})
	w.API.Messaging = api.MessagingDeps{Pipeline: p, Pairing: pc}
	w.Register = append(w.Register, func(r grpc.ServiceRegistrar) { pairingproxy.RegisterService(r, proxy) })
	w.Background = append(w.Background, p.Start)
	w.Closers = append(w.Closers, func() { _ = st.Flush() })
	w.Logger.Info("messaging", "channels", strings.Join(p.ChannelNames(), ","), "dm_scope", string(scope))
	return nil
}

// snapshot is the config the secrets wiring loaded (secrets decrypted), if any.
func (w *Wiring) snapshot() *configstore.Snapshot {
	if w.Config == nil {
		return nil
	}
	return w.Config.Current()
}

// messagingConfig is the config the channels read: the secrets wiring's
// snapshot, else the file read here; nil when there is no config file (the
// local channel then runs with the defaults).
func messagingConfig(w *Wiring) (*config.Config, error) {
	if snap := w.snapshot(); snap != nil {
		return snap.Config, nil
	}
	c, err := config.Load(w.ConfigPath)
	if errors.Is(err, errs.ErrNotFound) {
		return nil, nil
	}
	return c, err
}

// channelProblems refuses to start on an invalid channel or session
// setting (dm.policy "open" among them), naming the field and the fix.
func channelProblems(c *config.Config) error {
	var msgs []string
	for _, p := range config.Errors(c.Validate()) {
		if strings.HasPrefix(p.Path, "channels.") || strings.HasPrefix(p.Path, "session.") {
			msgs = append(msgs, p.String())
		}
	}
	if len(msgs) > 0 {
		return fmt.Errorf("invalid config, the gateway will not start:\n  %s\n(check with `moltbot config validate`): %w",
			strings.Join(msgs, "\n  "), errs.ErrInvalidArgument)
	}
	return nil
}

func dmScope(c *config.Config) string {
	if c == nil {
		return ""
	}
	if s, ok := c.Raw["session"].(map[string]any); ok {
		if v, ok := s["dmScope"].(string); ok {
			return v
		}
	}
	return ""
}

func policyOf(ch config.Channel) policy.Config {
	return policy.Config{
		DMPolicy: policy.DMPolicy(ch.DM.Policy), DMAllowFrom: ch.DM.AllowFrom,
		GroupPolicy: policy.GroupPolicy(ch.Groups.Policy), GroupAllowFrom: ch.Groups.AllowFrom,
	}
}

// addOwner writes sender into channels.<channel>.owner through the config
// store (validated, secrets kept encrypted, sealed backup, atomic write)
// and reloads, so the pipeline's owners change at once.
func addOwner(ctx context.Context, w *Wiring, channel, sender string) error {
	if w.Config == nil {
		return fmt.Errorf("no config store is loaded, so channels.%s.owner cannot be written: %w", channel, errs.ErrFailedPrecondition)
	}
	var cur []string
	if snap := w.snapshot(); snap != nil {
		cur = snap.View.Channels[channel].Owner
	}
	next, changed, err := policy.WithOwner(cur, sender)
	if err != nil || !changed {
		return err
	}
	b, err := json.Marshal(next)
	if err != nil {
		return err
	}
	path := "channels." + channel + ".owner"
	if _, err := w.Config.Set(ctx, path, string(b), false, false); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	resp, err := reload(ctx, w)
	if err != nil {
		return fmt.Errorf("%s written; reload failed (run `moltbot gateway reload`): %w", path, err)
	}
	if !resp.GetApplied() {
		return fmt.Errorf("%s written but the reload was refused (run `moltbot config validate`, then `moltbot gateway reload`): %w", path, errs.ErrFailedPrecondition)
	}
	return nil
}

// ownersOf is channels.<ch>.owner for every channel.
func ownersOf(v config.View) map[string][]string {
	m := map[string][]string{}
	for name, ch := range v.Channels {
		if len(ch.Owner) > 0 {
			m[name] = ch.Owner
		}
	}
	return m
}

func sortedChannels(m map[string]config.Channel) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// secretValue returns a secret field's value: plaintext, a resolved
// ${VAR}/${file:...} reference, or an envelope decrypted by secretsd (with
// the field's path as AAD). The value is never logged or put in an error.
func secretValue(ctx context.Context, w *Wiring, s config.Secret) (string, error) {
	if v, ok := w.snapshot().Secret(s.Path); ok && v != "" {
		return v, nil
	}
	switch s.State {
	case config.StatePlain:
		return s.Plain, nil
	case config.StateReference:
		opts := config.ResolveOptions{StateDir: w.StateDir, Protected: []string{w.Loaded.Base.PKIDir}}
		if snap := w.snapshot(); snap != nil && snap.Config != nil {
			opts.FileRoots = snap.Config.FileRoots()
		}
		v, err := config.ResolveString(s.Ref, opts)
		if err != nil {
			return "", fmt.Errorf("%s: %w", s.Path, err)
		}
		return v, nil
	case config.StateEnvelope:
		if s.Envelope == nil {
			return "", fmt.Errorf("%s: malformed encrypted value; set it again with `moltbot config set %s`", s.Path, s.Path)
		}
		text, err := s.Envelope.Encode()
		if err != nil {
			return "", fmt.Errorf("%s: %w", s.Path, err)
		}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		r, err := secretsv1.NewSecretsClient(w.SecretsConn).Decrypt(ctx, &secretsv1.DecryptRequest{Envelope: text, Aad: s.Path})
		if err != nil {
			return "", fmt.Errorf("%s: decrypt through secretsd: %w", s.Path, errs.FromStatus(err))
		}
		return string(r.GetPlaintext()), nil
	}
	return "", fmt.Errorf("%s: not set; the channel needs it (set it with `moltbot config set %s <token>`)", s.Path, s.Path)
}
