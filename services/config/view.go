package config

import (
	"strconv"
	"strings"

	"github.com/moltbot/moltbot-secure/services/envelope"
)

// Secret is a secret field in the typed view. Exactly one of Plain (a
// plaintext value, or a resolved reference) or Envelope is meaningful; the
// gateway decrypts Envelope through secretsd with AAD Path.
type Secret struct {
	Path     string
	State    SecretState
	Plain    string             // plaintext or resolved reference value
	Ref      string             // the reference as written, when State is StateReference
	Envelope *envelope.Envelope // when State is StateEnvelope
}

// IsSet reports whether the field has a usable value.
func (s Secret) IsSet() bool {
	return s.State == StatePlain || s.State == StateReference || s.State == StateEnvelope
}

// View is typed, defaulted access to the parts the services use. It is
// derived from the trees; change the config through Set, not through a View.
type View struct {
	Version  int
	Gateway  Gateway
	Channels map[string]Channel
	Agents   Agents
	Models   map[string]Provider
	Logging  Logging
	Security Security
}

type Gateway struct {
	Bind      string
	Port      int
	Auth      GatewayAuth
	Remote    Secret
	ControlUI ControlUI
	Inbound   Inbound
}

// Inbound bounds the gateway's message processing (gateway.inbound.*);
// 0 means the default (the gateway's dispatch package holds the defaults
// and the allowed ranges).
type Inbound struct {
	Workers         int // messages processed at once, over all sessions
	QueuePerSession int // messages waiting behind a session's running one
	MaxSessions     int // sessions with queued messages
}

type GatewayAuth struct {
	Mode     string // "token" (default) or "password"
	Token    Secret
	Password Secret
}

type ControlUI struct {
	// Enabled: the gateway serves the UI (default true; upstream's key).
	Enabled                      bool
	AllowInsecureAuth            bool
	DangerouslyDisableDeviceAuth bool
	// AllowedOrigins are the HTTPS proxies (e.g. Tailscale Serve) the UI
	// may be reached through, normalised (NormalizeOrigin); invalid entries
	// are left out (Validate reports them).
	AllowedOrigins []string
}

type Access struct {
	Policy    string
	AllowFrom []string
}

type Channel struct {
	Enabled       bool // default true when the channel is configured
	BaseURL       string
	Token         Secret
	BotToken      Secret
	AppToken      Secret
	APIKey        Secret
	SigningSecret Secret
	DM            Access // policy default "pairing"
	Groups        Access // policy default "allowlist"
	// Owner is channels.<ch>.owner: the owner's own sender ids, the only
	// ones whose DMs fold into the main session.
	Owner    []string
	Accounts map[string]Channel
}

type Agents struct {
	Backend string // "echo" (default) or "openai"
	Sandbox Sandbox
}

type Sandbox struct {
	Mode            string // non-main (default) | off | all
	Scope           string // session (default) | agent | shared
	WorkspaceAccess string // none (default) | ro | rw
	// WorkspaceQuota is workspaceQuota as written ("" = the default, 512 MiB).
	WorkspaceQuota string
	Docker         Docker
	// MainNetwork is agents.defaults.sandbox.main.network, the network of
	// the "main" profile ("" = sandboxd's default, bridge).
	MainNetwork string
}

type Docker struct {
	Image     string
	Network   string
	Memory    string
	CPUs      float64
	PidsLimit int64
	User      string
	Env       map[string]string
	Binds     []string
}

type Provider struct {
	BaseURL string
	APIKey  Secret
	Model   string
}

type Logging struct {
	RedactSensitive string // "tools" (default) or "off"
}

type Ack struct {
	ID, Reason, Until string
}

type Security struct {
	Acknowledged []Ack
}

// Defaults used by View.
const (
	DefaultSandboxImage = "moltbot-sandbox:latest"
	DefaultBind         = "loopback"
	DefaultPort         = 18789
)

// View builds the typed view. Call Resolve first so references carry their
// values; without it, reference secrets have an empty Plain.
func (c *Config) View() View {
	r := treeReader{raw: c.Raw, res: c.Resolved}
	v := View{
		Version: int(r.num(0, "version")),
		Gateway: Gateway{
			Bind: r.str(DefaultBind, "gateway", "bind"),
			Port: int(r.num(DefaultPort, "gateway", "port")),
			Auth: GatewayAuth{
				Mode:     r.str("token", "gateway", "auth", "mode"),
				Token:    r.secret("gateway", "auth", "token"),
				Password: r.secret("gateway", "auth", "password"),
			},
			Remote: r.secret("gateway", "remote", "token"),
			Inbound: Inbound{
				Workers:         int(r.num(0, "gateway", "inbound", "workers")),
				QueuePerSession: int(r.num(0, "gateway", "inbound", "queuePerSession")),
				MaxSessions:     int(r.num(0, "gateway", "inbound", "maxSessions")),
			},
			ControlUI: ControlUI{
				Enabled:                      r.boolean(true, "gateway", "controlUi", "enabled"),
				AllowInsecureAuth:            r.boolean(false, "gateway", "controlUi", "allowInsecureAuth"),
				DangerouslyDisableDeviceAuth: r.boolean(false, "gateway", "controlUi", "dangerouslyDisableDeviceAuth"),
				AllowedOrigins:               normalizeOrigins(r.strList("gateway", "controlUi", "allowedOrigins")),
			},
		},
		Channels: map[string]Channel{},
		Agents: Agents{
			Backend: r.str("echo", "agents", "defaults", "backend"),
			Sandbox: Sandbox{
				Mode:            r.str(SandboxModes[0], "agents", "defaults", "sandbox", "mode"),
				MainNetwork:     r.str("", "agents", "defaults", "sandbox", "main", "network"),
				Scope:           r.str(SandboxScopes[0], "agents", "defaults", "sandbox", "scope"),
				WorkspaceAccess: r.str(WorkspaceAccesses[0], "agents", "defaults", "sandbox", "workspaceAccess"),
				WorkspaceQuota:  r.scalar("", "agents", "defaults", "sandbox", "workspaceQuota"),
			},
		},
		Models:  map[string]Provider{},
		Logging: Logging{RedactSensitive: defaultRedact},
	}
	d := []string{"agents", "defaults", "sandbox", "docker"}
	at := func(k ...string) []string { return append(append([]string{}, d...), k...) }
	v.Agents.Sandbox.Docker = Docker{
		Image:     r.str(DefaultSandboxImage, at("image")...),
		Network:   r.str("none", at("network")...),
		Memory:    r.scalar("", at("memory")...),
		CPUs:      r.num(0, at("cpus")...),
		PidsLimit: int64(r.num(0, at("pidsLimit")...)),
		User:      r.str("", at("user")...),
		Env:       r.strMap(at("env")...),
		Binds:     r.strList(at("binds")...),
	}
	for _, name := range r.keys("channels") {
		v.Channels[name] = r.channel([]string{"channels", name}, true)
	}
	for _, name := range r.keys("models", "providers") {
		p := []string{"models", "providers", name}
		v.Models[name] = Provider{
			BaseURL: r.str("", append(p, "baseUrl")...),
			APIKey:  r.secret(append(p, "apiKey")...),
			Model:   r.str("", append(p, "model")...),
		}
	}
	switch rs, _ := r.get("logging", "redactSensitive"); t := rs.(type) {
	case bool:
		if !t {
			v.Logging.RedactSensitive = "off"
		}
	case string:
		v.Logging.RedactSensitive = t
	}
	if acks, ok := r.get("security", "acknowledged"); ok {
		list, _ := acks.([]any)
		for i := range list {
			p := []string{"security", "acknowledged", strconv.Itoa(i)}
			v.Security.Acknowledged = append(v.Security.Acknowledged, Ack{
				ID: r.str("", append(p, "id")...), Reason: r.str("", append(p, "reason")...), Until: r.str("", append(p, "until")...),
			})
		}
	}
	return v
}

type treeReader struct{ raw, res map[string]any }

func (r treeReader) get(keys ...string) (any, bool) {
	if r.res != nil {
		return GetIn(r.res, keys)
	}
	return GetIn(r.raw, keys)
}

func (r treeReader) str(def string, keys ...string) string {
	if v, ok := r.get(keys...); ok {
		if s, ok := v.(string); ok && s != "" {
			return s
		}
	}
	return def
}

func (r treeReader) scalar(def string, keys ...string) string {
	v, ok := r.get(keys...)
	if !ok {
		return def
	}
	switch t := v.(type) {
	case string:
		return t
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	}
	return def
}

func (r treeReader) num(def float64, keys ...string) float64 {
	if v, ok := r.get(keys...); ok {
		if f, ok := v.(float64); ok {
			return f
		}
	}
	return def
}

func (r treeReader) boolean(def bool, keys ...string) bool {
	if v, ok := r.get(keys...); ok {
		if b, ok := v.(bool); ok {
			return b
		}
	}
	return def
}

func (r treeReader) keys(keys ...string) []string {
	v, _ := GetIn(r.raw, keys)
	m, _ := v.(map[string]any)
	return sortedKeys(m)
}

func (r treeReader) strList(keys ...string) []string {
	v, _ := r.get(keys...)
	list, _ := v.([]any)
	var out []string
	for _, e := range list {
		switch t := e.(type) {
		case string:
			out = append(out, t)
		case float64:
			out = append(out, strconv.FormatFloat(t, 'f', -1, 64))
		}
	}
	return out
}

func (r treeReader) strMap(keys ...string) map[string]string {
	v, _ := r.get(keys...)
	m, _ := v.(map[string]any)
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, e := range m {
		if s, ok := e.(string); ok {
			out[k] = s
		}
	}
	return out
}

func (r treeReader) secret(keys ...string) Secret {
	s := Secret{Path: strings.Join(keys, ".")}
	raw, ok := GetIn(r.raw, keys)
	if !ok {
		s.State = StateEmpty
		return s
	}
	s.State = StateOf(raw)
	switch s.State {
	case StatePlain:
		s.Plain = raw.(string)
	case StateReference:
		s.Ref = raw.(string)
		if r.res != nil {
			if v, ok := GetIn(r.res, keys); ok {
				if str, ok := v.(string); ok && str != s.Ref {
					s.Plain = str
				}
			}
		}
	case StateEnvelope:
		if e, err := envelope.FromMap(raw.(map[string]any)); err == nil {
			s.Envelope = &e
		}
	}
	return s
}

func (r treeReader) channel(p []string, withAccounts bool) Channel {
	at := func(k ...string) []string { return append(append([]string{}, p...), k...) }
	ch := Channel{
		Enabled:       r.boolean(true, at("enabled")...),
		BaseURL:       r.str("", at("baseUrl")...),
		Token:         r.secret(at("token")...),
		BotToken:      r.secret(at("botToken")...),
		AppToken:      r.secret(at("appToken")...),
		APIKey:        r.secret(at("apiKey")...),
		SigningSecret: r.secret(at("signingSecret")...),
		DM: Access{
			Policy:    r.str(r.str(DMPolicies[0], at("dmPolicy")...), at("dm", "policy")...),
			AllowFrom: r.strList(at("dm", "allowFrom")...),
		},
		Groups: Access{
			Policy:    r.str(r.str(GroupPolicies[0], at("groupPolicy")...), at("groups", "policy")...),
			AllowFrom: r.strList(at("groups", "allowFrom")...),
		},
		Owner: r.strList(at("owner")...),
	}
	if ch.DM.AllowFrom == nil {
		ch.DM.AllowFrom = r.strList(at("allowFrom")...)
	}
	if ch.Groups.AllowFrom == nil {
		ch.Groups.AllowFrom = r.strList(at("groupAllowFrom")...)
	}
	if withAccounts {
		for _, id := range r.keys(at("accounts")...) {
			if ch.Accounts == nil {
				ch.Accounts = map[string]Channel{}
			}
			ch.Accounts[id] = r.channel(at("accounts", id), false)
		}
	}
	return ch
}
