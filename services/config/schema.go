package config

import (
	"sort"
	"strings"
)

// kind is the JSON shape a schema node accepts.
type kind uint8

const (
	kAny    kind = iota // free-form upstream subtree: kept, not checked
	kObject             // fixed keys
	kMap                // any keys, each value of elem
	kList               // array of elem
	kString
	kBool
	kNumber
	kInt
	kSecret      // string (plain or reference) or an envelope object
	kScalar      // string or number (allowFrom entries: user ids)
	kStringOrNum // memory: "512m" or bytes
	kStringOrBool
)

func (k kind) String() string {
	switch k {
	case kObject, kMap:
		return "an object"
	case kList:
		return "an array"
	case kString:
		return "a string"
	case kBool:
		return "a boolean (true or false)"
	case kNumber:
		return "a number"
	case kInt:
		return "an integer"
	case kSecret:
		return "a string, a reference like \"${VAR}\", or an encrypted envelope"
	case kScalar, kStringOrNum:
		return "a string or a number"
	case kStringOrBool:
		return "a string or a boolean"
	}
	return "any value"
}

type node struct {
	kind   kind
	fields map[string]*node
	elem   *node
	enum   []string
	// rest, for an object, is the node of keys not in fields (nil: unknown
	// keys are errors). Free-form upstream sections use it.
	rest *node
	// loose accepts a value of another shape unchecked (an upstream
	// section that is an object in some versions only).
	loose bool
}

func (n *node) secret() bool { return n.kind == kSecret }

func obj(f map[string]*node) *node { return &node{kind: kObject, fields: f} }
func mapOf(e *node) *node          { return &node{kind: kMap, elem: e} }
func listOf(e *node) *node         { return &node{kind: kList, elem: e} }
func str(enum ...string) *node     { return &node{kind: kString, enum: enum} }
func of(k kind) *node              { return &node{kind: k} }

// freeForm is an upstream section kept verbatim except for the known
// secret fields in f, which are classified (and so encrypted on write).
func freeForm(f map[string]*node) *node {
	return &node{kind: kObject, fields: f, rest: of(kAny), loose: true}
}

// child returns the node of key k below an object node, or nil.
func (n *node) child(k string) *node {
	if c, ok := n.fields[k]; ok {
		return c
	}
	return n.rest
}

// Enumerations, first value is the default.
var (
	DMPolicies        = []string{"pairing", "allowlist", "disabled"}
	GroupPolicies     = []string{"allowlist", "disabled", "open"}
	SandboxModes      = []string{"non-main", "off", "all"}
	SandboxScopes     = []string{"session", "agent", "shared"}
	WorkspaceAccesses = []string{"none", "ro", "rw"}
	Backends          = []string{"echo", "openai"}
	AuthModes         = []string{"token", "password"}
)

// KnownChannels are the channel names the config accepts: the ones this
// gateway runs (telegram, local) and the upstream ones a migrated config may
// carry. Any other name is an error with a did-you-mean.
var KnownChannels = []string{"discord", "googlechat", "imessage", "line", "local", "matrix", "mattermost",
	"msteams", "signal", "slack", "telegram", "whatsapp"}

// ChannelSecretFields are the secret keys of a channel and of each of its
// accounts.
var ChannelSecretFields = []string{"token", "botToken", "appToken", "apiKey", "signingSecret",
	"userToken", "accessToken", "password", "webhookSecret"}

// Upstream keys this gateway keeps but does not use, so a migrated upstream
// config is valid; any other key is an error (a misspelling would otherwise
// silently have no effect).
var (
	upstreamChannelKeys = []string{"actions", "blockStreaming", "blockStreamingCoalesce", "capabilities", "channels",
		"chunkMode", "commands", "configWrites", "dmHistoryLimit", "dms", "draftChunk", "groupEnabled", "groupChannels",
		"guilds", "heartbeat", "historyLimit", "homeserver", "httpUrl", "linkPreview", "markdown", "mediaMaxMb", "network",
		"proxy", "reactionLevel", "reactionNotifications", "replyToMode", "requireMention", "retry", "selfChatMode",
		"streamMode", "textChunkLimit", "timeoutSeconds", "tokenFile", "webhookPath", "account", "cliPath", "region",
		"slashCommand", "thread", "userId", "serverUrl", "teams", "appId", "tenantId", "sendReadReceipts"}
	upstreamGatewayKeys      = []string{"reload", "http", "trustedProxies", "nodes", "customBindHost"}
	upstreamAgentDefaultKeys = []string{"models", "heartbeat", "contextTokens", "thinkingDefault", "verboseDefault",
		"elevatedDefault", "timeoutSeconds", "mediaMaxMb", "typingIntervalSeconds", "typingMode", "maxConcurrent",
		"subagents", "userTimezone", "timeFormat", "skipBootstrap", "bootstrapMaxChars", "blockStreamingDefault",
		"blockStreamingBreak", "blockStreamingChunk", "blockStreamingCoalesce", "humanDelay", "cliBackends",
		"contextPruning", "compaction", "memorySearch", "imageModel", "envelopeTimezone", "envelopeTimestamp", "repoRoot"}
	upstreamSandboxKeys = []string{"workspaceRoot", "browser", "tools", "sessionToolsVisibility", "perSession"}
	upstreamDockerKeys  = []string{"containerPrefix", "workdir", "readOnlyRoot", "tmpfs", "capDrop", "setupCommand",
		"memorySwap", "ulimits", "seccompProfile", "apparmorProfile", "dns", "extraHosts"}
)

// keep adds upstream keys as free-form fields of an object node.
func keep(n *node, keys []string) *node {
	for _, k := range keys {
		if _, ok := n.fields[k]; !ok {
			n.fields[k] = of(kAny)
		}
	}
	return n
}

// schema is built once per Config use; a function, not a package variable,
// so there is no global state.
func schema() *node {
	access := func() *node {
		return keep(obj(map[string]*node{
			"policy":    of(kString), // enum checked in semantic checks ("open" has its own message)
			"allowFrom": listOf(of(kScalar)),
			"enabled":   of(kBool),
		}), []string{"groupEnabled", "groupChannels"})
	}
	channelFields := func() map[string]*node {
		f := map[string]*node{
			"enabled":        of(kBool),
			"name":           of(kString),
			"baseUrl":        of(kString),
			"webhookUrl":     of(kString),
			"dm":             access(),
			"groups":         mapOrAccess(),
			"dmPolicy":       of(kString),
			"allowFrom":      listOf(of(kScalar)),
			"groupPolicy":    of(kString),
			"groupAllowFrom": listOf(of(kScalar)),
			// The owner's own sender ids: only they reach the main session.
			"owner": listOf(of(kScalar)),
		}
		for _, s := range ChannelSecretFields {
			f[s] = of(kSecret)
		}
		for _, k := range upstreamChannelKeys {
			f[k] = of(kAny)
		}
		return f
	}
	channel := func() *node {
		f := channelFields()
		f["accounts"] = mapOf(obj(channelFields()))
		return obj(f)
	}
	channels := map[string]*node{}
	for _, name := range KnownChannels {
		channels[name] = channel()
	}
	// Upstream shared defaults for every channel (e.g. groupPolicy).
	channels["defaults"] = of(kAny)

	docker := obj(map[string]*node{
		"image":      of(kString),
		"network":    of(kString),
		"memory":     of(kStringOrNum),
		"cpus":       of(kNumber),
		"pidsLimit":  of(kInt),
		"user":       of(kString),
		"env":        mapOf(of(kString)),
		"binds":      listOf(of(kString)),
		"privileged": of(kBool),
		"capAdd":     listOf(of(kString)),
	})
	keep(docker, upstreamDockerKeys)
	top := map[string]*node{
		"version": of(kInt),
		"gateway": keep(obj(map[string]*node{
			"mode": of(kString),
			"port": of(kInt),
			"bind": of(kString),
			"auth": obj(map[string]*node{
				"mode":     str(AuthModes...),
				"token":    of(kSecret),
				"password": of(kSecret),
			}),
			"remote": obj(map[string]*node{
				"url":   of(kString),
				"token": of(kSecret),
			}),
			"controlUi": obj(map[string]*node{
				"enabled":                      of(kBool),
				"basePath":                     of(kString),
				"allowInsecureAuth":            of(kBool),
				"dangerouslyDisableDeviceAuth": of(kBool),
				"allowedOrigins":               listOf(of(kString)),
			}),
			"tailscale": of(kAny),
			// This gateway's own: message concurrency (README "Concurrent chats").
			"inbound": obj(map[string]*node{
				"workers":         of(kInt),
				"queuePerSession": of(kInt),
				"maxSessions":     of(kInt),
			}),
		}), upstreamGatewayKeys),
		"channels": obj(channels),
		"agents": obj(map[string]*node{
			"defaults": keep(obj(map[string]*node{
				"backend":   str(Backends...),
				"model":     of(kAny),
				"workspace": of(kString),
				"sandbox": keep(obj(map[string]*node{
					"mode":            str(SandboxModes...),
					"scope":           str(SandboxScopes...),
					"workspaceAccess": str(WorkspaceAccesses...),
					"workspaceQuota":  of(kStringOrNum),
					"docker":          docker,
					"prune":           of(kAny),
					// The "main" profile the owner's main session runs under.
					"main": obj(map[string]*node{
						"network": of(kString),
					}),
				}), upstreamSandboxKeys),
			}), upstreamAgentDefaultKeys),
			"list": listOf(of(kAny)),
		}),
		"models": obj(map[string]*node{
			"mode": of(kString),
			"providers": mapOf(obj(map[string]*node{
				"baseUrl": of(kString),
				"apiKey":  of(kSecret),
				"model":   of(kString),
				"api":     of(kString),
				"models":  of(kAny),
			})),
		}),
		"logging": obj(map[string]*node{
			"level":           of(kString),
			"file":            of(kString),
			"redactSensitive": of(kStringOrBool),
		}),
		"secrets": obj(map[string]*node{
			"fileRoots": listOf(of(kString)),
		}),
		"security": obj(map[string]*node{
			"acknowledged": listOf(obj(map[string]*node{
				"id":     of(kString),
				"reason": of(kString),
				"until":  of(kString),
			})),
		}),
	}
	// Upstream sections we keep verbatim without checking their contents.
	for _, k := range []string{"meta", "env", "wizard", "diagnostics", "update", "browser", "ui", "auth",
		"nodeHost", "bindings", "broadcast", "audio", "messages", "commands", "approvals",
		"session", "web", "cron", "discovery", "canvasHost", "skills", "plugins", "$schema"} {
		top[k] = of(kAny)
	}
	// Upstream free-form places that hold secrets: every env entry (API keys
	// for the agent), tools.<tool>.apiKey, hooks.token, talk.apiKey.
	top["env"] = &node{kind: kObject, fields: map[string]*node{
		"shellEnv": of(kAny),
		"vars":     mapOf(of(kSecret)),
	}, rest: of(kSecret), loose: true}
	top["tools"] = &node{kind: kObject, rest: freeForm(map[string]*node{"apiKey": of(kSecret)}), loose: true}
	top["hooks"] = freeForm(map[string]*node{"token": of(kSecret)})
	top["talk"] = freeForm(map[string]*node{"apiKey": of(kSecret)})
	return obj(top)
}

// groups is either an access block {policy, allowFrom} or, upstream, a map of
// group ids; accept both shapes by not checking it beyond "object".
func mapOrAccess() *node {
	return freeForm(map[string]*node{
		"policy":    of(kString),
		"allowFrom": listOf(of(kScalar)),
		"enabled":   of(kBool),
	})
}

// splitPath splits a dotted path; empty segments are an error for the caller.
func splitPath(path string) []string { return strings.Split(path, ".") }

// lookup walks the schema along keys. It returns the node, or the index of
// the first unknown key (and nil).
func lookup(root *node, keys []string) (*node, int) {
	n := root
	for i, k := range keys {
		switch n.kind {
		case kAny:
			return n, -1
		case kObject:
			c := n.child(k)
			if c == nil {
				return nil, i
			}
			n = c
		case kMap:
			n = n.elem
		case kList:
			if !isIndex(k) {
				return nil, i
			}
			n = n.elem
		default:
			return nil, i // below a scalar
		}
	}
	return n, -1
}

func isIndex(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// closest returns the known key nearest to k, or "" if none is near.
func closest(k string, known []string) string {
	best, bestD := "", 1<<30
	lk := strings.ToLower(k)
	for _, c := range known {
		d := levenshtein(lk, strings.ToLower(c))
		if d < bestD || (d == bestD && c < best) {
			best, bestD = c, d
		}
	}
	limit := max(2, len(k)/3)
	if bestD <= limit {
		return best
	}
	return ""
}

func fieldNames(n *node) []string {
	out := make([]string, 0, len(n.fields))
	for k := range n.fields {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// IsSecretPath reports whether a dotted config path is a secret field.
func IsSecretPath(path string) bool {
	n, bad := lookup(schema(), splitPath(path))
	return bad < 0 && n != nil && n.secret()
}
