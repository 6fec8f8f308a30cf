package config

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/moltbot/moltbot-secure/services/auth"
)

// Severity of a Problem.
type Severity string

const (
	SevError   Severity = "error"
	SevWarning Severity = "warning"
)

// Problem is one finding of Validate.
type Problem struct {
	// ID is a stable finding id where one exists (e.g. IDTokenShort), shared
	// with the security audit.
	ID       string
	File     string
	Line     int
	Path     string
	Message  string
	Fix      string
	Severity Severity
}

func (p Problem) String() string {
	loc := p.File
	if p.Line > 0 {
		loc += ":" + strconv.Itoa(p.Line)
	}
	s := fmt.Sprintf("%s: %s: %s: %s", loc, p.Severity, p.Path, p.Message)
	if p.Fix != "" {
		s += " (fix: " + p.Fix + ")"
	}
	return s
}

// Errors returns the problems of severity error.
func Errors(ps []Problem) []Problem {
	var out []Problem
	for _, p := range ps {
		if p.Severity == SevError {
			out = append(out, p)
		}
	}
	return out
}

// MigrateFix is the command that rewrites removed options.
const MigrateFix = "moltbot security migrate"

// Validate checks types, enums and the security rules. It reads Raw for
// structure and Resolved (when Resolve ran) for values behind references.
func (c *Config) Validate() []Problem {
	v := &validator{c: c}
	v.walk(c.Raw, c.schema, nil)
	v.semantic()
	sort.SliceStable(v.out, func(i, j int) bool {
		if v.out[i].Severity != v.out[j].Severity {
			return v.out[i].Severity == SevError
		}
		return v.out[i].Path < v.out[j].Path
	})
	return v.out
}

type validator struct {
	c   *Config
	out []Problem
}

func (v *validator) add(sev Severity, p, msg, fix string) { v.addID("", sev, p, msg, fix) }

func (v *validator) addID(id string, sev Severity, p, msg, fix string) {
	file := v.c.File
	if file == "" {
		file = FileName
	}
	v.out = append(v.out, Problem{ID: id, File: file, Line: v.c.lines[p], Path: p, Message: msg, Fix: fix, Severity: sev})
}

// source names where the value at p came from, for messages about values
// the file does not show: the encrypted value, or the reference.
// from is " (the value of ${VAR})" or " (the encrypted value)" when the
// value at p is not the one the file shows, else "".
func (v *validator) from(p string) string {
	switch s := v.source(p, "value"); {
	case s == "value":
		return ""
	case strings.HasPrefix(s, "value from "):
		return " (the value of " + strings.TrimPrefix(s, "value from ") + ")"
	default:
		return " (" + s + ")"
	}
}

func (v *validator) source(p, noun string) string {
	if _, ok := v.c.decrypted[p]; ok {
		return "the encrypted " + strings.TrimPrefix(noun, "the ")
	}
	if raw, ok := GetIn(v.c.Raw, splitPath(p)); ok {
		if s, _ := raw.(string); IsReference(s) {
			return noun + " from " + s
		}
	}
	return noun
}

func (v *validator) walk(val any, n *node, keys []string) {
	p := strings.Join(keys, ".")
	if s, ok := val.(string); ok && n.kind == kString && len(n.enum) > 0 && IsReference(s) {
		// Check the value behind the reference, as its consumer will see it.
		if r, ok := v.resolved(keys...); ok {
			if msg := typeProblem(n, r); msg != "" {
				v.add(SevError, p, msg+v.from(p), "")
			}
		}
		return
	}
	if msg := typeProblem(n, val); msg != "" {
		// Enum violations of fixed-enum fields are errors with the choices as fix.
		v.add(SevError, p, msg, "")
		return
	}
	switch n.kind {
	case kObject:
		m, ok := val.(map[string]any)
		if !ok {
			return // a loose upstream section of another shape
		}
		for _, k := range sortedKeys(m) {
			c := n.child(k)
			if c == nil {
				// Unknown keys are errors: a misspelt key would otherwise be
				// kept and silently have no effect.
				what := "key"
				if p == "channels" {
					what = "channel"
				}
				s := closest(k, fieldNames(n))
				if p == "" && s == "" {
					// A top-level section of a newer upstream: kept, not judged.
					v.add(SevWarning, k, fmt.Sprintf("unknown section %q (kept as is, not used by this gateway)", k), "")
					v.credentialLike(m[k], []string{k})
					continue
				}
				msg := fmt.Sprintf("unknown %s %q; known: %s", what, k, strings.Join(fieldNames(n), ", "))
				if len(n.fields) > 30 {
					msg = fmt.Sprintf("unknown %s %q (none of the %d known keys of %s is near it; see the README)", what, k, len(n.fields), orTop(p))
				}
				fix := "delete it (`moltbot config set " + joinPath(p, k) + " --unset`)"
				if s != "" {
					msg = fmt.Sprintf("unknown %s %q; did you mean %s?", what, k, joinPath(p, s))
					fix = "rename it to " + joinPath(p, s)
				}
				v.add(SevError, joinPath(p, k), msg, fix)
				continue
			}
			v.walk(m[k], c, append(keys, k))
		}
	case kMap:
		m := val.(map[string]any)
		for _, k := range sortedKeys(m) {
			v.walk(m[k], n.elem, append(keys, k))
		}
	case kList:
		for i, e := range val.([]any) {
			v.walk(e, n.elem, append(keys, strconv.Itoa(i)))
		}
	case kAny:
		v.credentialLike(val, keys)
	case kSecret:
		if m, ok := val.(map[string]any); ok && !envelopeLike(m) {
			v.add(SevError, p, "is an object but not an encrypted envelope", "set it with `moltbot config set "+p+" -`")
		}
	}
}

func envelopeLike(m map[string]any) bool { _, ok := m["$enc"]; return ok }

// resolved returns the value at keys from Resolved when present, else Raw.
func (v *validator) resolved(keys ...string) (any, bool) {
	if v.c.Resolved != nil {
		return GetIn(v.c.Resolved, keys)
	}
	return GetIn(v.c.Raw, keys)
}

func (v *validator) raw(keys ...string) (any, bool) { return GetIn(v.c.Raw, keys) }

func (v *validator) semantic() {
	if ver, ok := v.raw("version"); ok {
		if f, ok := ver.(float64); ok && f > CurrentVersion {
			v.add(SevError, "version", fmt.Sprintf("config version %v is newer than this build understands (%d)", f, CurrentVersion), "upgrade moltbot")
		}
	}
	v.gateway()
	// Semantic checks judge values as the gateway will use them: behind
	// their references (Resolved), or decrypted (DecryptedChecks).
	if chans, ok := v.resolved("channels"); ok {
		if m, ok := chans.(map[string]any); ok {
			for _, name := range sortedKeys(m) {
				ch, ok := m[name].(map[string]any)
				if !ok {
					continue
				}
				v.channel("channels."+name, ch)
				if accts, ok := ch["accounts"].(map[string]any); ok {
					for _, id := range sortedKeys(accts) {
						if a, ok := accts[id].(map[string]any); ok {
							v.channel("channels."+name+".accounts."+id, a)
						}
					}
				}
			}
		}
	}
	v.sandbox()
	v.acknowledged()
	v.fileRefs()
}

// fileRefs checks secrets.fileRoots against the stack's protected dirs and
// that every absolute ${file:...} lies beneath a root, so `config set` of a
// reference elsewhere is refused before anything is read.
func (v *validator) fileRefs() {
	roots := v.c.FileRoots()
	if bad := fileRootProblems(roots, ProtectedDirs); len(bad) > 0 {
		v.add(SevError, FileRootsPath, "file roots "+quoteList(roots)+": "+strings.Join(bad, "; "),
			"list only dedicated directories, e.g. "+DefaultFileRoots[0]+" (the secret-files volume)")
		return
	}
	var walk func(val any, p string)
	walk = func(val any, p string) {
		switch t := val.(type) {
		case map[string]any:
			for _, k := range sortedKeys(t) {
				walk(t[k], joinPath(p, k))
			}
		case []any:
			for i, e := range t {
				walk(e, joinPath(p, strconv.Itoa(i)))
			}
		case string:
			for _, m := range refRE.FindAllStringSubmatch(t, -1) {
				if strings.HasPrefix(m[0], "$$") || m[2] == "" {
					continue
				}
				if f := strings.TrimSpace(m[2]); filepath.IsAbs(f) && !beneathAny(filepath.Clean(f), roots) {
					v.add(SevError, p, fmt.Sprintf("file reference ${file:%s} is outside the file roots %s", f, quoteList(roots)),
						"put the file there with `moltbot secrets put-file NAME` and write ${file:NAME}")
				}
			}
		}
	}
	walk(v.c.Raw, "")
}

func beneathAny(p string, roots []string) bool {
	for _, r := range roots {
		if within(p, r) {
			return true
		}
	}
	return false
}

func (v *validator) gateway() {
	// The deprecated Control UI switches work as the seed says (with a
	// warning at every start and a CRITICAL audit finding), so validation
	// warns but never refuses them.
	for _, f := range []string{"allowInsecureAuth", "dangerouslyDisableDeviceAuth"} {
		p := "gateway.controlUi." + f
		val, ok := v.raw("gateway", "controlUi", f)
		if !ok {
			continue
		}
		if b, _ := val.(bool); b {
			v.add(SevWarning, p, "is deprecated and dangerous: it weakens the Control UI's device authentication (removed in phase 2)", "delete it (`"+MigrateFix+"` or `moltbot security audit --fix` does)")
		} else {
			v.add(SevWarning, p, "is deprecated and has no effect", "delete it (`"+MigrateFix+"` does)")
		}
	}
	if list, ok := v.raw("gateway", "controlUi", "allowedOrigins"); ok {
		items, _ := list.([]any)
		for i, it := range items {
			s, _ := it.(string)
			if _, err := NormalizeOrigin(s); err != nil {
				v.add(SevError, fmt.Sprintf("gateway.controlUi.allowedOrigins[%d]", i), err.Error(), "give the proxy's origin, e.g. https://host.tailnet.ts.net")
			}
		}
	}
	mode := "token"
	if m, ok := v.raw("gateway", "auth", "mode"); ok {
		mode, _ = m.(string)
	}
	field := "token"
	if mode == "password" {
		field = "password"
	}
	p := "gateway.auth." + field
	raw, ok := v.raw("gateway", "auth", field)
	if !ok {
		// The token may come from $CLAWDBOT_GATEWAY_TOKEN or the bootstrap
		// file instead; only the gateway knows, and it refuses to start
		// without one. Here it is a warning only when nothing else can supply it.
		if os.Getenv("CLAWDBOT_GATEWAY_TOKEN") == "" && os.Getenv("CLAWDBOT_GATEWAY_TOKEN_FILE") == "" {
			v.add(SevWarning, p, "is not set here; the gateway needs it, $CLAWDBOT_GATEWAY_TOKEN or $CLAWDBOT_GATEWAY_TOKEN_FILE", "moltbot token generate, then `moltbot config set "+p+" -`")
		}
		return
	}
	if field != "token" {
		return
	}
	if StateOf(raw) == StateEnvelope {
		return // checked by the gateway after decryption (DecryptedChecks)
	}
	val, _ := v.resolved("gateway", "auth", "token")
	s, ok := val.(string)
	if !ok || IsReference(s) {
		return // wrong type is reported by walk; an unresolved reference by Resolve
	}
	if id, msg, weak := TokenProblem(s, v.source(p, "the token")); weak {
		v.addID(id, SevError, p, msg, auth.TokenFix)
	}
}

func (v *validator) channel(prefix string, ch map[string]any) {
	checkDM := func(p string, val any) {
		s, ok := val.(string)
		if !ok {
			return
		}
		switch {
		case s == "open":
			v.add(SevError, p, `"open" was removed: anyone could talk to the bot; use "pairing" (each new sender gets a code you approve)`+v.from(p), "run `"+MigrateFix+"` (rewrites it to \"pairing\")")
		case !contains(DMPolicies, s) && !IsReference(s):
			v.add(SevError, p, fmt.Sprintf("%q is not one of %s", s, quoteList(DMPolicies))+v.from(p), "")
		}
	}
	checkGroup := func(p string, val any) {
		if s, ok := val.(string); ok && !contains(GroupPolicies, s) && !IsReference(s) {
			v.add(SevError, p, fmt.Sprintf("%q is not one of %s", s, quoteList(GroupPolicies))+v.from(p), "")
		}
	}
	if dm, ok := ch["dm"].(map[string]any); ok {
		if pol, ok := dm["policy"]; ok {
			checkDM(prefix+".dm.policy", pol)
		}
	}
	if pol, ok := ch["dmPolicy"]; ok {
		checkDM(prefix+".dmPolicy", pol)
	}
	if g, ok := ch["groups"].(map[string]any); ok {
		if pol, ok := g["policy"]; ok {
			checkGroup(prefix+".groups.policy", pol)
		}
	}
	if pol, ok := ch["groupPolicy"]; ok {
		checkGroup(prefix+".groupPolicy", pol)
	}
	v.owner(prefix, ch)
}

// owner checks <channel>.owner: exact sender ids only. A wildcard would put
// every sender in the main session, next to the owner's workspace.
func (v *validator) owner(prefix string, ch map[string]any) {
	list, ok := ch["owner"].([]any)
	if !ok {
		return // a wrong type is reported by walk
	}
	for i, e := range list {
		p := fmt.Sprintf("%s.owner.%d", prefix, i)
		s, isStr := e.(string)
		switch {
		case !isStr:
			// numbers are ids too (kScalar)
		case strings.TrimSpace(s) == "":
			v.add(SevError, p, "an empty owner id matches no sender", "delete it, or put the owner's sender id (`moltbot pairing approve <channel> <code> --owner` adds it)")
		case strings.ContainsAny(s, "*?"):
			v.add(SevError, p, fmt.Sprintf("%q is a wildcard: every sender would share the owner's main session and workspace", s),
				"list the owner's exact sender ids; `moltbot pairing approve <channel> <code> --owner` adds one")
		}
	}
}

// mainProfile checks agents.defaults.sandbox.main (the owner's main
// session's sandbox profile).
func (v *validator) mainProfile() {
	const p = "agents.defaults.sandbox.main.network"
	n, ok := v.resolved("agents", "defaults", "sandbox", "main", "network")
	s, isStr := n.(string)
	if !ok || !isStr {
		return
	}
	if err := CheckNetworkName(s); err != nil {
		v.add(SevError, p, err.Error()+v.from(p), `use "bridge" (default, egress), "none" or the name of a bridge network`)
	}
}

func (v *validator) sandbox() {
	v.mainProfile()
	// Workspaces are named volumes sandboxd keeps (no host directory), so
	// ro and rw need no path; the quota has sandboxd's bounds.
	if q, ok := v.resolved("agents", "defaults", "sandbox", "workspaceQuota"); ok {
		switch q.(type) {
		case string, float64: // other types are reported by walk
			if _, err := WorkspaceQuotaValue(q); err != nil {
				p := "agents.defaults.sandbox.workspaceQuota"
				v.add(SevError, p, err.Error()+"; want "+SizeFormat+" (1 MiB..1 TiB)"+v.from(p), "moltbot config set "+p+" 512m")
			}
		}
	}
	const base = "agents.defaults.sandbox.docker"
	d, ok := v.resolved("agents", "defaults", "sandbox", "docker")
	m, isMap := d.(map[string]any)
	if !ok || !isMap {
		return
	}
	if n, ok := m["network"].(string); ok {
		if err := CheckNetworkName(n); err != nil {
			v.add(SevError, base+".network", err.Error()+v.from(base+".network"), `use "none" (default) or a dedicated bridge network`)
		}
	}
	if e, ok := m["env"].(map[string]any); ok {
		env := make(map[string]string, len(e))
		for k, val := range e {
			env[k], _ = val.(string) // non-strings are reported by walk
		}
		if err := CheckSandboxEnv(env); err != nil {
			v.add(SevError, base+".env", err.Error(), "")
		}
	}
	// Resource limits: the same parser and bounds sandboxd applies, so a
	// bad value is refused here and not when the next command runs.
	if mem, ok := m["memory"]; ok {
		switch mem.(type) {
		case string, float64: // other types are reported by walk
			if _, err := memoryValue(mem); err != nil {
				v.add(SevError, base+".memory", err.Error()+"; want "+SizeFormat+" (32 MiB..64 GiB)"+v.from(base+".memory"), "moltbot config set "+base+".memory 512m")
			}
		}
	}
	if c, ok := m["cpus"].(float64); ok {
		if err := CheckCPUs(c); err != nil {
			v.add(SevError, base+".cpus", err.Error(), "moltbot config set "+base+".cpus 1")
		}
	}
	if n, ok := m["pidsLimit"].(float64); ok && n == float64(int64(n)) {
		if err := CheckPidsLimit(int64(n)); err != nil {
			v.add(SevError, base+".pidsLimit", err.Error(), "moltbot config set "+base+".pidsLimit 128")
		}
	}
	if p, ok := m["privileged"].(bool); ok && p {
		v.add(SevError, base+".privileged", "a privileged container is not a sandbox", "delete it")
	}
	if binds, ok := m["binds"].([]any); ok {
		for i, b := range binds {
			s, ok := b.(string)
			if !ok {
				continue
			}
			// sandboxd's rule (NormalizeBind), refused here already.
			if _, err := NormalizeBind(s); err != nil {
				v.add(SevError, fmt.Sprintf("%s.binds.%d", base, i), err.Error(), "remove this bind; bind only the directories the agent needs, as /host/dir:/dir[:ro|rw]")
			}
		}
	}
}

func (v *validator) acknowledged() {
	acks, ok := v.raw("security", "acknowledged")
	list, isList := acks.([]any)
	if !ok || !isList {
		return
	}
	for i, a := range list {
		m, ok := a.(map[string]any)
		if !ok {
			continue
		}
		p := fmt.Sprintf("security.acknowledged.%d", i)
		if id, _ := m["id"].(string); id == "" {
			v.add(SevError, p+".id", "is required (the audit finding id being acknowledged)", "")
		}
		if u, ok := m["until"].(string); ok {
			if _, err := ParseUntil(u); err != nil {
				v.add(SevError, p+".until", fmt.Sprintf("%q is not a date (want YYYY-MM-DD or RFC 3339)", u), "")
			}
		}
	}
}

// ParseUntil parses an acknowledgement expiry: a date or an RFC 3339 time.
func ParseUntil(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Parse(time.RFC3339, s)
}

// credentialRE matches key names that hold credentials.
var credentialRE = regexp.MustCompile(`(?i)token|api_?key|secret|password|passwd`)

// credentialLike warns about plaintext strings under credential-named keys
// in free-form sections: they are not classified as secrets, so they are
// not encrypted. Known secret places (env.*, tools.*.apiKey, hooks.token,
// talk.apiKey) are classified in the schema and never reach here.
func (v *validator) credentialLike(val any, keys []string) {
	switch t := val.(type) {
	case map[string]any:
		for _, k := range sortedKeys(t) {
			v.credentialLike(t[k], append(keys, k))
		}
	case []any:
		for i, e := range t {
			v.credentialLike(e, append(keys, strconv.Itoa(i)))
		}
	case string:
		if len(keys) == 0 || StateOf(t) != StatePlain || !credentialRE.MatchString(keys[len(keys)-1]) {
			return
		}
		p := strings.Join(keys, ".")
		v.add(SevWarning, p, "looks like a credential stored in plaintext in a free-form section; it is not encrypted",
			"put it in an environment variable and reference it: `moltbot config set "+p+" '${VAR}'`")
	}
}
