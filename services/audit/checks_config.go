package audit

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/envelope"
)

func defaultCheckToken(tok string) error { return auth.CheckToken(tok) }

// Password rule for gateway.auth.mode "password": humans pick passwords, so
// ask for length and variety rather than the token's 32/20.
const (
	MinPasswordLength   = 16
	MinPasswordDistinct = 8
)

// secretState classifies a secret-ish value as written in a file.
type secretState int

const (
	sAbsent secretState = iota
	sEmpty
	sPlain
	sReference
	sEnvelope
	sBadEnvelope
	sWrongType
)

func classify(v any, present bool) secretState {
	if !present || v == nil {
		return sAbsent
	}
	switch t := v.(type) {
	case string:
		switch {
		case strings.TrimSpace(t) == "":
			return sEmpty
		case isReference(t):
			return sReference
		case envelope.IsEnvelope(t):
			if _, err := envelope.Decode(t); err != nil {
				return sBadEnvelope
			}
			return sEnvelope
		}
		return sPlain
	case map[string]any:
		if !envelope.IsEnvelope(t) {
			return sWrongType
		}
		if _, err := envelope.FromMap(t); err != nil {
			return sBadEnvelope
		}
		return sEnvelope
	}
	return sWrongType
}

// isReference matches the config's reference syntax: "${VAR}" or
// "${file:PATH}" ("$${" is an escaped literal).
func isReference(s string) bool {
	for i := 0; i+1 < len(s); i++ {
		if s[i] != '$' || s[i+1] != '{' {
			continue
		}
		if i > 0 && s[i-1] == '$' {
			continue
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return false
		}
		body := s[i+2 : i+end]
		if strings.HasPrefix(body, "file:") && len(body) > len("file:") {
			return true
		}
		if isEnvName(body) {
			return true
		}
	}
	return false
}

func isEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		ok := r == '_' || (r >= 'A' && r <= 'Z') || (i > 0 && r >= '0' && r <= '9')
		if !ok {
			return false
		}
	}
	return true
}

func typeName(v any) string {
	switch t := v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case float64, int, int64, float32, uint64:
		return "a number"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	default:
		return fmt.Sprintf("a %T", t)
	}
}

func quoteOrType(v any) string {
	if s, ok := v.(string); ok {
		if len(s) > 40 {
			s = s[:40] + "..."
		}
		return strconv.Quote(s)
	}
	return "(" + typeName(v) + ")"
}

// typeErr records a value of the wrong shape; the check then treats it as
// absent, so one bad section never stops the others.
func (a *auditor) typeErr(path string, v any, want string) {
	a.add(Finding{
		ID: "config.invalid_type", Severity: Warn,
		Title:  "Config values of the wrong type are ignored by the audit",
		Detail: fmt.Sprintf("%s is %s, expected %s", path, typeName(v), want),
		Remedy: fmt.Sprintf("run `moltbot config validate` and fix %s", a.in.ConfigPath),
	})
}

// obj returns m[key] as an object (nil when absent or of the wrong type).
func (a *auditor) obj(m map[string]any, key, path string) map[string]any {
	v, ok := m[key]
	if !ok || v == nil {
		return nil
	}
	o, ok := v.(map[string]any)
	if !ok {
		a.typeErr(path, v, "an object")
		return nil
	}
	return o
}

// str returns m[key] as a string ("" when absent or of the wrong type).
func (a *auditor) str(m map[string]any, key, path string) string {
	v, ok := m[key]
	if !ok || v == nil {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		a.typeErr(path, v, "a string")
		return ""
	}
	return s
}

func (a *auditor) checkConfig() {
	if a.in.ConfigErr != nil {
		a.add(Finding{
			ID: "config.invalid", Severity: Critical,
			Title:  "The config file cannot be read or parsed",
			Detail: fmt.Sprintf("%s: %v; the config checks ran on an empty config", a.in.ConfigPath, a.in.ConfigErr),
			Remedy: fmt.Sprintf("run `moltbot config validate` and fix %s (or restore it with `moltbot rollback`)", a.in.ConfigPath),
		})
		return
	}
	if a.in.Config == nil {
		a.add(Finding{
			ID: "config.missing", Severity: Info,
			Title:  "No config file: defaults apply",
			Detail: a.in.ConfigPath + " does not exist",
			Remedy: "run `moltbot security migrate` or `moltbot config set` to create one",
		})
	}
}

func (a *auditor) gateway() map[string]any { return a.obj(a.in.Config, "gateway", "gateway") }

// EnvTokenSource is Input.TokenSource for a token from the environment.
const EnvTokenSource = "$CLAWDBOT_GATEWAY_TOKEN"

// tokenFix is the generate_token action for gateway.auth.token.
func tokenFix(id string) []FixAction {
	return []FixAction{{
		ID: id, Kind: KindGenerateToken, Path: "gateway.auth.token",
		Keys:        []string{"gateway", "auth", "token"},
		Description: "generate a gateway token that passes the rule and store it encrypted in gateway.auth.token",
	}}
}

// checkAuth covers gateway.auth.* and gateway.bind_no_auth.
func (a *auditor) checkAuth() {
	gw := a.gateway()
	au := a.obj(gw, "auth", "gateway.auth")
	mode := "token"
	if v, ok := au["mode"]; ok {
		s, _ := v.(string)
		if s != "token" && s != "password" {
			a.add(Finding{
				ID: "gateway.auth.mode_invalid", Severity: Critical,
				Title:  "Gateway auth mode is not token or password",
				Detail: fmt.Sprintf("gateway.auth.mode is %s; authentication is required on every connection, the audit assumes \"token\"", quoteOrType(v)),
				Remedy: "moltbot config set gateway.auth.mode token",
			})
		} else {
			mode = s
		}
	}
	// Only $CLAWDBOT_GATEWAY_TOKEN outranks the config (a token file named
	// by $CLAWDBOT_GATEWAY_TOKEN_FILE is read after it, so a generated
	// config token does replace that one).
	fixable := a.in.TokenSource != EnvTokenSource
	noAuth := false
	field := "token"
	if mode == "password" {
		field = "password"
	}
	path := "gateway.auth." + field
	raw, present := au[field]
	st := classify(raw, present)
	switch st {
	case sWrongType, sBadEnvelope:
		what := typeName(raw)
		if st == sBadEnvelope {
			what = "an encrypted envelope that does not validate"
		}
		f := Finding{
			ID: "gateway.auth." + field + "_invalid", Severity: Critical,
			Title:  "Gateway " + field + " has an invalid value",
			Detail: fmt.Sprintf("%s is %s; expected a string, a ${VAR}/${file:...} reference or an encrypted envelope", path, what),
			Remedy: "moltbot config set " + path + " -   (or `moltbot security audit --fix` for a generated token)",
		}
		if field == "token" {
			f.Fixable, f.fixes = fixable, tokenFix(f.ID)
		}
		a.add(f)
		noAuth = a.in.Token == ""
	}
	effective := a.in.Token
	if effective == "" && st == sPlain {
		effective, _ = raw.(string)
	}
	if effective == "" && (st == sAbsent || st == sEmpty) {
		noAuth = true
		f := Finding{
			ID: "gateway.auth." + field + "_missing", Severity: Critical,
			Title:  "No gateway " + field + ": authentication is required on every connection",
			Detail: path + " is not set and no token was found in $CLAWDBOT_GATEWAY_TOKEN or the token file",
			Remedy: "moltbot security audit --fix   (or `moltbot token generate` and `moltbot config set gateway.auth.token -`)",
		}
		if field == "token" {
			f.Fixable, f.fixes = fixable, tokenFix(f.ID)
		}
		a.add(f)
	}
	if effective != "" {
		if field == "token" {
			a.checkTokenStrength(effective, fixable)
		} else {
			a.checkPassword(effective)
		}
	}
	if st == sPlain && field == "token" {
		a.add(Finding{
			ID: "gateway.auth.token_plaintext", Severity: Warn,
			Title:  "Gateway token is stored in plain text in the config",
			Detail: "gateway.auth.token in " + a.in.ConfigPath + " is neither encrypted nor a ${VAR}/${file:...} reference",
			Remedy: "moltbot security migrate",
		})
	}
	if st == sPlain || st == sEnvelope || st == sReference {
		a.sawSecretField = true
	}
	if st == sEnvelope {
		a.sawEnvelope = true
	}
	a.noAuth = noAuth

	bind := a.str(gw, "bind", "gateway.bind")
	if noAuth && !isLoopback(bind) {
		a.add(Finding{
			ID: "gateway.bind_no_auth", Severity: Critical,
			Title:   "Gateway listens beyond loopback without authentication",
			Detail:  fmt.Sprintf("gateway.bind is %q and no usable gateway %s is configured", bind, field),
			Remedy:  "moltbot security audit --fix   (generates a token), or `moltbot config set gateway.bind loopback`",
			Fixable: fixable && field == "token", fixes: tokenFix("gateway.bind_no_auth"),
		})
	}
}

func isLoopback(bind string) bool {
	switch strings.ToLower(strings.TrimSpace(bind)) {
	case "", "loopback", "localhost", "127.0.0.1", "::1", "[::1]":
		return true
	}
	return strings.HasPrefix(bind, "127.")
}

// checkTokenStrength applies the injected token rule. The rule is outside
// code: if it panics (an upstream fork's check threw and took the audit
// down), that is a finding too.
func (a *auditor) checkTokenStrength(tok string, fixable bool) {
	panicked, err := a.callCheckToken(tok)
	if panicked != nil {
		a.add(Finding{
			ID: "gateway.auth.token_unchecked", Severity: Warn,
			Title:   "The gateway token could not be checked",
			Detail:  fmt.Sprintf("the token rule failed: %v", panicked),
			Remedy:  "moltbot security audit --fix   (replaces the token with a generated one)",
			Fixable: fixable, fixes: tokenFix("gateway.auth.token_unchecked"),
		})
		return
	}
	if err == nil {
		return
	}
	n, distinct := auth.Counts(tok)
	src := "the gateway token"
	if a.in.TokenSource != "" {
		src += " (" + a.in.TokenSource + ")"
	}
	f := Finding{
		Severity: Critical, Fixable: fixable,
		Remedy: "moltbot security audit --fix   (or `" + auth.TokenFix + "` and `moltbot config set gateway.auth.token -`)",
	}
	if !fixable {
		// --fix cannot change the environment the gateway was started with:
		// a token written to the config would lose to it on the next start.
		f.Remedy = "set a strong token in " + strings.TrimPrefix(a.in.TokenSource, "$") + " (`" + auth.TokenFix +
			"` makes one), then restart the gateway with it; --fix does not change the environment"
	}
	if n < auth.MinTokenLength {
		f.ID, f.Title = "gateway.auth.token_short", "Gateway token is too short"
		f.Detail = fmt.Sprintf("%s has %d characters; at least %d are required", src, n, auth.MinTokenLength)
	} else {
		f.ID, f.Title = "gateway.auth.token_low_entropy", "Gateway token has too few distinct characters"
		f.Detail = fmt.Sprintf("%s has %d distinct characters; at least %d are required", src, distinct, auth.MinTokenDistinct)
	}
	f.fixes = tokenFix(f.ID)
	a.add(f)
}

func (a *auditor) callCheckToken(tok string) (panicked any, err error) {
	defer func() {
		if r := recover(); r != nil {
			panicked = r
		}
	}()
	return nil, a.in.CheckToken(tok)
}

func (a *auditor) checkPassword(pw string) {
	n, distinct := auth.Counts(pw)
	if n >= MinPasswordLength && distinct >= MinPasswordDistinct {
		return
	}
	a.add(Finding{
		ID: "gateway.auth.password_weak", Severity: Critical,
		Title:  "Gateway password is weak",
		Detail: fmt.Sprintf("the password has %d characters (%d distinct); at least %d with %d distinct are required", n, distinct, MinPasswordLength, MinPasswordDistinct),
		Remedy: "use token mode: moltbot config set gateway.auth.mode token && moltbot security audit --fix",
	})
}

// checkControlUI reports the deprecated control UI flags: set at all, they
// are critical (the seed: removed in phase 2), and --fix removes them.
func (a *auditor) checkControlUI() {
	cui := a.obj(a.gateway(), "controlUi", "gateway.controlUi")
	for _, fl := range []struct{ key, id, what string }{
		{"allowInsecureAuth", "gateway.control_ui.insecure_auth", "lets the control UI authenticate over insecure HTTP"},
		{"dangerouslyDisableDeviceAuth", "gateway.control_ui.device_auth_disabled", "turns off control UI device authentication"},
	} {
		v, ok := cui[fl.key]
		if !ok {
			continue
		}
		path := "gateway.controlUi." + fl.key
		detail := fmt.Sprintf("%s is %v: deprecated, removed in phase 2", path, quoteOrBool(v))
		if v == true {
			detail = fmt.Sprintf("%s is true: it %s; deprecated, removed in phase 2", path, fl.what)
		}
		a.add(Finding{
			ID: fl.id, Severity: Critical,
			Title:   "Deprecated dangerous flag " + path + " is set",
			Detail:  detail,
			Remedy:  "moltbot config set " + path + " --unset   (or `moltbot security audit --fix`)",
			Fixable: true,
			fixes: []FixAction{{ID: fl.id, Kind: KindRemoveConfig, Path: path,
				Keys: []string{"gateway", "controlUi", fl.key}, Description: "remove " + path}},
		})
	}
}

func quoteOrBool(v any) string {
	if b, ok := v.(bool); ok {
		return strconv.FormatBool(b)
	}
	return quoteOrType(v)
}

func (a *auditor) checkLogging() {
	lg := a.obj(a.in.Config, "logging", "logging")
	v, ok := lg["redactSensitive"]
	if !ok {
		return
	}
	switch t := v.(type) {
	case string:
		if strings.EqualFold(t, "off") || strings.EqualFold(t, "none") {
			break
		}
		return
	case bool:
		if !t {
			break
		}
		return
	default:
		a.typeErr("logging.redactSensitive", v, "a string or a boolean")
		return
	}
	a.add(Finding{
		ID: "logging.redact_off", Severity: Warn,
		Title:  "Log redaction is off",
		Detail: fmt.Sprintf("logging.redactSensitive is %s: tokens and tool output may be written to logs", quoteOrBool(v)),
		Remedy: "moltbot config set logging.redactSensitive tools",
	})
}

// surface counts what the summary finding reports.
type surface struct {
	channels, disabled, openDM, openGroups, wildcards int
}

// checkChannels covers channels.<id>.dm.* and .groups.* for each channel and
// each of its accounts (flat upstream keys dmPolicy/allowFrom/groupPolicy/
// groupAllowFrom included).
func (a *auditor) checkChannels() {
	chans := a.obj(a.in.Config, "channels", "channels")
	for _, name := range sortedKeys(chans) {
		ch, ok := chans[name].(map[string]any)
		if !ok {
			a.typeErr("channels."+name, chans[name], "an object")
			continue
		}
		a.surface.channels++
		a.checkChannelBlock(name, "channels."+name, ch)
		accts := a.obj(ch, "accounts", "channels."+name+".accounts")
		for _, id := range sortedKeys(accts) {
			acc, ok := accts[id].(map[string]any)
			if !ok {
				a.typeErr("channels."+name+".accounts."+id, accts[id], "an object")
				continue
			}
			a.checkChannelBlock(name, "channels."+name+".accounts."+id, acc)
		}
	}
}

func (a *auditor) checkChannelBlock(name, path string, b map[string]any) {
	if b["enabled"] == false {
		a.surface.disabled++
		return
	}
	keys := func(k ...string) []string {
		out := append([]string{}, strings.Split(path, ".")...)
		return append(out, k...)
	}
	dm := a.obj(b, "dm", path+".dm")
	policy, ppath := a.str(dm, "policy", path+".dm.policy"), path+".dm.policy"
	if policy == "" {
		policy, ppath = a.str(b, "dmPolicy", path+".dmPolicy"), path+".dmPolicy"
	}
	if policy == "open" {
		a.surface.openDM++
		a.add(Finding{
			ID: "channels." + name + ".dm.open", Severity: Critical,
			Title:  "Anyone can DM the bot on " + name,
			Detail: ppath + " is \"open\": every sender reaches the agent and its tools without approval",
			Remedy: "moltbot security migrate   (sets \"pairing\"), or `moltbot config set " + ppath + " pairing`",
		})
	}
	var wild []string
	for _, p := range []struct {
		m    map[string]any
		key  string
		path string
	}{{dm, "allowFrom", path + ".dm.allowFrom"}, {b, "allowFrom", path + ".allowFrom"}} {
		if a.hasWildcard(p.m, p.key, p.path) {
			wild = append(wild, p.path)
		}
	}
	if len(wild) > 0 {
		a.surface.wildcards++
		sev := Critical // "*" makes an allowlist or pairing policy open in effect
		if policy == "open" || policy == "disabled" {
			sev = Warn
		}
		a.add(Finding{
			ID: "channels." + name + ".dm.allowFrom.wildcard", Severity: sev,
			Title:  "DM allowlist on " + name + " contains \"*\" (anyone)",
			Detail: strings.Join(wild, ", ") + " contains \"*\"",
			Remedy: "moltbot security migrate   (drops \"*\"; approve senders with `moltbot pairing approve " + name + " <code>`)",
		})
	}

	a.checkOwners(name, path, b)

	// groups is either an access block {policy, allowFrom} or, upstream, a
	// map of group ids to per-group settings.
	var groups map[string]any
	if gv, ok := b["groups"]; ok && gv != nil {
		if g, ok := gv.(map[string]any); ok {
			groups = g
		} else {
			a.typeErr(path+".groups", gv, "an object")
		}
	}
	_, hasPolicy := groups["policy"]
	_, hasAllow := groups["allowFrom"]
	accessBlock := hasPolicy || hasAllow
	gpolicy, gkeys := "", []string(nil)
	if accessBlock {
		gpolicy, gkeys = a.str(groups, "policy", path+".groups.policy"), keys("groups", "policy")
	}
	if gpolicy == "" {
		gpolicy, gkeys = a.str(b, "groupPolicy", path+".groupPolicy"), keys("groupPolicy")
	}
	if gpolicy == "open" {
		a.surface.openGroups++
		gp := strings.Join(gkeys, ".")
		a.add(Finding{
			ID: "channels." + name + ".groups.open", Severity: Warn,
			Title:   "Any group can add and use the bot on " + name,
			Detail:  gp + " is \"open\"",
			Remedy:  "moltbot config set " + gp + " allowlist   (or `moltbot security audit --fix`)",
			Fixable: true,
			fixes: []FixAction{{ID: "channels." + name + ".groups.open", Kind: KindSetConfig, Path: gp, Keys: gkeys,
				Value: "allowlist", Description: "set " + gp + " to \"allowlist\""}},
		})
	}
	var gwild []string
	if accessBlock {
		if a.hasWildcard(groups, "allowFrom", path+".groups.allowFrom") {
			gwild = append(gwild, path+".groups.allowFrom")
		}
	} else {
		for _, gid := range sortedKeys(groups) {
			if g, ok := groups[gid].(map[string]any); ok && a.hasWildcard(g, "allowFrom", path+".groups."+gid+".allowFrom") {
				gwild = append(gwild, path+".groups."+gid+".allowFrom")
			}
		}
	}
	if a.hasWildcard(b, "groupAllowFrom", path+".groupAllowFrom") {
		gwild = append(gwild, path+".groupAllowFrom")
	}
	if len(gwild) > 0 {
		a.surface.wildcards++
		a.add(Finding{
			ID: "channels." + name + ".groups.allowFrom.wildcard", Severity: Warn,
			Title:  "Group allowlist on " + name + " contains \"*\" (anyone)",
			Detail: strings.Join(gwild, ", ") + " contains \"*\"",
			Remedy: "replace \"*\" with the member ids to allow: moltbot config set " + gwild[0] + " '[\"<id>\"]'",
		})
	}
}

// checkOwners: channels.<ch>.owner decides who reaches the main session,
// which runs under the main sandbox profile with the owner's workspace and
// egress. Owner ids match a sender exactly (gateway policy.IsOwner), so the
// only way a config puts non-owners there is an owner entry that is not one
// exact id: "*" or any entry with a glob character reads as "everyone" (the
// gateway refuses to match it, and the validator refuses the file, but a
// file edited by hand is audited before anything loads it). That is
// CRITICAL. An owner entry that is not a plain id, is empty, or carries a
// channel prefix matches nobody: WARN, the owner has no main session.
func (a *auditor) checkOwners(name, path string, b map[string]any) {
	v, ok := b["owner"]
	if !ok || v == nil {
		return
	}
	op := path + ".owner"
	list, ok := v.([]any)
	if !ok {
		a.typeErr(op, v, "a list of sender ids")
		return
	}
	var wild, dead []string
	for i, e := range list {
		switch t := e.(type) {
		case string:
			switch {
			case strings.ContainsAny(t, "*?"):
				wild = append(wild, fmt.Sprintf("%s.%d %q", op, i, t))
			case strings.TrimSpace(t) == "":
				dead = append(dead, fmt.Sprintf("%s.%d (empty)", op, i))
			case strings.HasPrefix(strings.ToLower(t), strings.ToLower(name)+":") || (name == "telegram" && strings.HasPrefix(strings.ToLower(t), "tg:")):
				// allowFrom accepts "telegram:42"; owner ids are matched bare.
				dead = append(dead, fmt.Sprintf("%s.%d %q (owner ids are bare sender ids, without the channel prefix)", op, i, t))
			}
		case float64:
		default:
			dead = append(dead, fmt.Sprintf("%s.%d (%s)", op, i, typeName(e)))
		}
	}
	if len(wild) > 0 {
		a.add(Finding{
			ID: "channels." + name + ".owner.wildcard", Severity: Critical,
			Title: "Owner list on " + name + " is not exact ids: non-owners would share the main session",
			Detail: strings.Join(wild, ", ") + ": an owner entry decides who gets the main session, with the owner's workspace " +
				"and network; a wildcard would make every sender the owner",
			Remedy: "list only your own sender ids: moltbot config set " + op + " '[\"<your sender id>\"]'" +
				" (or remove it with `moltbot config set " + op + " --unset`, then DM the bot and run `moltbot pairing approve " + name + " <code> --owner`)",
		})
	}
	if len(dead) > 0 {
		a.add(Finding{
			ID: "channels." + name + ".owner.unmatched", Severity: Warn,
			Title:  "Owner entries on " + name + " match no sender",
			Detail: strings.Join(dead, ", ") + " is not a sender id",
			Remedy: "moltbot config set " + op + " '[\"<your sender id>\"]'",
		})
	}
}

func (a *auditor) hasWildcard(m map[string]any, key, path string) bool {
	v, ok := m[key]
	if !ok || v == nil {
		return false
	}
	list, ok := v.([]any)
	if !ok {
		a.typeErr(path, v, "a list")
		return false
	}
	for _, e := range list {
		if s, ok := e.(string); ok && strings.TrimSpace(s) == "*" {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// checkSandbox covers agents.defaults.sandbox and per-agent overrides in
// agents.list.
func (a *auditor) checkSandbox() {
	agents := a.obj(a.in.Config, "agents", "agents")
	defs := a.obj(agents, "defaults", "agents.defaults")
	a.checkSandboxBlock("agents.defaults.sandbox", a.obj(defs, "sandbox", "agents.defaults.sandbox"))
	if lv, ok := agents["list"]; ok && lv != nil {
		list, ok := lv.([]any)
		if !ok {
			a.typeErr("agents.list", lv, "a list")
			return
		}
		for i, e := range list {
			ag, ok := e.(map[string]any)
			if !ok {
				continue
			}
			p := fmt.Sprintf("agents.list[%d].sandbox", i)
			a.checkSandboxBlock(p, a.obj(ag, "sandbox", p))
		}
	}
}

func (a *auditor) checkSandboxBlock(path string, sb map[string]any) {
	mode := a.str(sb, "mode", path+".mode")
	if mode == "" && path == "agents.defaults.sandbox" {
		mode = "non-main"
	}
	if mode != "" {
		a.sandboxModes = append(a.sandboxModes, path+"="+mode)
	}
	if mode == "off" {
		a.add(Finding{
			ID: "sandbox.mode_off", Severity: Warn,
			Title:  "Sandboxing is off: agent tools run on the host",
			Detail: path + ".mode is \"off\"",
			Remedy: "moltbot config set " + path + ".mode non-main   (needs Docker and the sandbox image; see `moltbot doctor`)",
		})
	}
	if mode != "off" && a.str(sb, "workspaceAccess", path+".workspaceAccess") == "rw" {
		// Under mode off every session runs the main profile, which mounts
		// the agent's workspace for the owner's session only.
		a.add(Finding{
			ID: "sandbox.workspace_rw", Severity: Warn,
			Title:  "Non-main sessions get the agent's workspace read-write",
			Detail: path + ".workspaceAccess is \"rw\": every group and non-owner sandbox mounts the agent's workspace at /workspace and can change or delete the owner's files",
			Remedy: "moltbot config set " + path + ".workspaceAccess ro   (the agent's workspace read-only at /agent; or none: each session its own)",
		})
	}
	d := a.obj(sb, "docker", path+".docker")
	if d == nil {
		return
	}
	dp := path + ".docker"
	if strings.EqualFold(a.str(d, "network", dp+".network"), "host") {
		a.add(Finding{
			ID: "sandbox.docker.network_host", Severity: Critical,
			Title:  "Sandbox containers share the host network",
			Detail: dp + ".network is \"host\": sandboxed code reaches every local service, the gateway included",
			Remedy: "moltbot config set " + dp + ".network --unset   (the default is no network)",
		})
	}
	if d["privileged"] == true {
		a.add(Finding{
			ID: "sandbox.docker.privileged", Severity: Critical,
			Title:  "Sandbox containers run privileged",
			Detail: dp + ".privileged is true: a privileged container is root on the host",
			Remedy: "moltbot config set " + dp + ".privileged --unset",
		})
	} else if v, ok := d["privileged"]; ok && v != nil {
		if _, isBool := v.(bool); !isBool {
			a.typeErr(dp+".privileged", v, "a boolean")
		}
	}
	if bv, ok := d["binds"]; ok && bv != nil {
		binds, ok := bv.([]any)
		if !ok {
			a.typeErr(dp+".binds", bv, "a list")
		}
		for _, e := range binds {
			s, _ := e.(string)
			if strings.Contains(s, "docker.sock") || strings.Contains(s, "podman.sock") || strings.Contains(s, "containerd.sock") {
				a.add(Finding{
					ID: "sandbox.docker.docker_socket_bind", Severity: Critical,
					Title:  "The container engine socket is mounted into sandboxes",
					Detail: dp + ".binds mounts " + strconv.Quote(s) + ": whoever holds the socket controls the host",
					Remedy: "remove that entry from " + dp + ".binds",
				})
			}
		}
	}
	user := strings.TrimSpace(a.str(d, "user", dp+".user"))
	if user == "root" || user == "0" || strings.HasPrefix(user, "root:") || strings.HasPrefix(user, "0:") {
		a.add(Finding{
			ID: "sandbox.docker.root_user", Severity: Warn,
			Title:  "Sandbox containers run as root",
			Detail: dp + ".user is " + strconv.Quote(user),
			Remedy: "moltbot config set " + dp + ".user --unset   (the sandbox image's non-root user is the default)",
		})
	}
	if cv, ok := d["capAdd"]; ok && cv != nil {
		caps, _ := cv.([]any)
		for _, e := range caps {
			s, _ := e.(string)
			switch strings.TrimPrefix(strings.ToUpper(s), "CAP_") {
			case "ALL", "SYS_ADMIN", "SYS_PTRACE", "NET_ADMIN", "SYS_MODULE", "DAC_READ_SEARCH":
				a.add(Finding{
					ID: "sandbox.docker.cap_add", Severity: Warn,
					Title:  "Sandbox containers get dangerous capabilities",
					Detail: dp + ".capAdd includes " + strconv.Quote(s),
					Remedy: "remove it from " + dp + ".capAdd",
				})
			}
		}
	}
}

// checkConfigSecrets reports plaintext values in secret fields of the
// config (gateway.auth.token has its own finding).
func (a *auditor) checkConfigSecrets() {
	var plain []string
	walkTree(a.in.Config, nil, 0, func(keys []string, v any) bool {
		p := strings.Join(keys, ".")
		if !a.in.IsSecretPath(p) {
			return true
		}
		st := classify(v, true)
		switch st {
		case sPlain:
			if p != "gateway.auth.token" {
				plain = append(plain, p)
			}
			a.sawSecretField = true
		case sEnvelope:
			a.sawEnvelope, a.sawSecretField = true, true
		case sReference:
			a.sawSecretField = true
		case sBadEnvelope, sWrongType:
			if !strings.HasPrefix(p, "gateway.auth.") {
				a.add(Finding{
					ID: "secrets.invalid_value", Severity: Warn,
					Title:  "A secret field holds a value of the wrong shape",
					Detail: fmt.Sprintf("%s is %s; expected a string, a reference or a valid envelope", p, typeName(v)),
					Remedy: "moltbot config set " + p + " -",
				})
			}
		}
		return false
	})
	if len(plain) > 0 {
		a.addPlaintext(a.in.ConfigPath+": "+strings.Join(plain, ", "), false)
	}
}

// addPlaintext records secrets.plaintext; copies (backups and strays) make
// it critical: nothing migrates them and they outlive the original.
func (a *auditor) addPlaintext(where string, isCopy bool) {
	sev := Warn
	remedy := "moltbot security migrate   (encrypts every secret in the config and auth profiles)"
	if isCopy {
		sev = Critical
		remedy = "delete the stray copies (after checking them) or run `moltbot security migrate`, which keeps only sealed backups"
	}
	a.add(Finding{
		ID: "secrets.plaintext", Severity: sev,
		Title:  "Secrets are stored unencrypted",
		Detail: where,
		Remedy: remedy,
	})
}

// walkTree calls fn for every value under v (depth-first, keys sorted);
// fn returns false to skip a value's children. Lists use the index as key.
func walkTree(v any, keys []string, depth int, fn func(keys []string, v any) bool) {
	if depth > 64 {
		return
	}
	switch t := v.(type) {
	case map[string]any:
		for _, k := range sortedKeys(t) {
			kk := append(keys[:len(keys):len(keys)], k)
			if fn(kk, t[k]) {
				walkTree(t[k], kk, depth+1, fn)
			}
		}
	case []any:
		for i, e := range t {
			kk := append(keys[:len(keys):len(keys)], strconv.Itoa(i))
			if fn(kk, e) {
				walkTree(e, kk, depth+1, fn)
			}
		}
	}
}

// checkDecrypted reports the config model's problems in decrypted values
// (Input.Decrypted) as findings with the same id and text as `config
// validate`. A weak encrypted token in the file is the running token's
// finding too when both are weak: add merges them by id.
func (a *auditor) checkDecrypted() {
	fixable := a.in.TokenSource != EnvTokenSource
	for _, p := range a.in.Decrypted {
		f := Finding{ID: p.ID, Severity: Warn, Title: p.Message, Detail: p.String(), Remedy: p.Fix}
		if f.ID == "" {
			f.ID = "config.decrypted_invalid"
			f.Title = "A value stored encrypted fails the config checks"
		}
		if p.Severity == config.SevError {
			f.Severity = Critical
		}
		switch f.ID {
		case config.IDTokenShort:
			f.Title = "Gateway token is too short"
		case config.IDTokenLowEntropy:
			f.Title = "Gateway token has too few distinct characters"
		}
		if p.Path == "gateway.auth.token" {
			f.Fixable, f.fixes = fixable, tokenFix(f.ID)
		}
		a.add(f)
	}
}
