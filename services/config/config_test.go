package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moltbot/moltbot-secure/services/envelope"
	"github.com/moltbot/moltbot-secure/services/errs"
	"github.com/stretchr/testify/require"
)

const upstream = `// moltbot config written by hand, upstream style
{
  gateway: {
    bind: 'loopback',
    auth: { mode: "token", token: "short-token" }, // too short
    controlUi: { allowInsecureAuth: true },
  },
  channels: {
    telegram: {
      botToken: "123456:ABC-telegram-secret",
      dm: { policy: "open", allowFrom: ["*"] },
      accounts: { work: { botToken: "${WORK_BOT_TOKEN}" } },
    },
  },
  models: { providers: { openai: { apiKey: "sk-openai-secret", model: "gpt-4o" } } },
  agents: { defaults: { sandbox: { mode: "all", docker: { network: "host", binds: ["/var/run/docker.sock:/var/run/docker.sock", "/:/host:ro", "/srv/data:/data"] } } } },
  unknownTopKey: { keep: 1 },
  loggin: {},
}
`

func TestParseJSON5AndLines(t *testing.T) {
	c, err := Parse("moltbot.json", []byte(upstream))
	require.NoError(t, err)
	v, err := c.Get("gateway.bind")
	require.NoError(t, err)
	require.Equal(t, "loopback", v)
	require.Equal(t, 5, c.Line("gateway.auth.token"))
	require.Equal(t, 11, c.Line("channels.telegram.dm.policy"))
	require.Equal(t, 16, c.Line("agents.defaults.sandbox.docker.binds.1"))

	// Written as JSON; unknown keys and references survive.
	out, err := c.Marshal()
	require.NoError(t, err)
	require.Contains(t, string(out), "\n  \"unknownTopKey\": {\n    \"keep\": 1\n  }")
	require.Contains(t, string(out), `"botToken": "${WORK_BOT_TOKEN}"`)
	c2, err := Parse("x", out)
	require.NoError(t, err)
	require.Equal(t, c.Raw, c2.Raw)
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"empty", "  \n", "f.json: file is empty"},
		{"not an object", "[1,2]", "top level is array, not an object"},
		{"syntax with line", "{\n  a: 1,\n  b: ?\n}", "f.json:3:"},
		{"not json", "hello world", "f.json:1:"},
		{"infinity", "{a: {b: Infinity}}", "a.b: Infinity and NaN"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("f.json", []byte(tc.in))
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
			require.True(t, errors.Is(err, errs.ErrInvalidArgument))
		})
	}
	_, err := Load(filepath.Join(t.TempDir(), "nope.json"))
	require.ErrorIs(t, err, errs.ErrNotFound)
}

func problemAt(ps []Problem, path string) *Problem {
	for i := range ps {
		if ps[i].Path == path {
			return &ps[i]
		}
	}
	return nil
}

func TestValidateUpstream(t *testing.T) {
	c, err := Parse("moltbot.json", []byte(upstream))
	require.NoError(t, err)
	require.NoError(t, c.Resolve(ResolveOptions{LookupEnv: func(string) (string, bool) { return "x", true }}))
	ps := c.Validate()
	tests := []struct {
		path, msg, fix string
		sev            Severity
		line           int
	}{
		{"channels.telegram.dm.policy", `"open" was removed`, "moltbot security migrate", SevError, 11},
		{"gateway.auth.token", "weak token: the rule is at least 32 characters with at least 20 distinct", "moltbot token generate", SevError, 5},
		// Deprecated, not removed (the seed): it works, with a warning.
		{"gateway.controlUi.allowInsecureAuth", "is deprecated and dangerous", "moltbot security migrate", SevWarning, 6},
		{"agents.defaults.sandbox.docker.network", `network "host"`, "none", SevError, 16},
		{"agents.defaults.sandbox.docker.binds.0", "Docker socket", "remove", SevError, 16},
		{"agents.defaults.sandbox.docker.binds.1", "host root", "bind only", SevError, 16},
		{"loggin", `unknown key "loggin"; did you mean logging?`, "rename it to logging", SevError, 18},
		{"unknownTopKey", `unknown section "unknownTopKey" (kept as is`, "", SevWarning, 17},
	}
	for _, tc := range tests {
		p := problemAt(ps, tc.path)
		require.NotNil(t, p, "expected a problem at %s; got %v", tc.path, ps)
		require.Contains(t, p.Message, tc.msg, tc.path)
		require.Contains(t, p.Fix, tc.fix, tc.path)
		require.Equal(t, tc.sev, p.Severity, tc.path)
		require.Equal(t, tc.line, p.Line, tc.path)
	}
	require.Nil(t, problemAt(ps, "agents.defaults.sandbox.docker.binds.2"))
	require.NotContains(t, ps[0].String(), "short-token", "problems never show the token")
	require.Len(t, Errors(ps), 6, "5 security errors and a misspelt key")
}

func TestValidateTypesAndEnums(t *testing.T) {
	tests := []struct{ in, path, want string }{
		{`{gateway: {port: "80"}}`, "gateway.port", "is a string, want an integer"},
		{`{gateway: {auth: {mode: "none"}}}`, "gateway.auth.mode", `"none" is not one of "token", "password"`},
		{`{channels: {telegram: {enabled: "yes"}}}`, "channels.telegram.enabled", "want a boolean"},
		{`{channels: {telegram: {dm: {policy: "everyone"}}}}`, "channels.telegram.dm.policy", `"everyone" is not one of "pairing", "allowlist", "disabled"`},
		{`{channels: {telegram: {dmPolicy: "open"}}}`, "channels.telegram.dmPolicy", `use "pairing"`},
		{`{channels: {telegram: {accounts: {a: {dm: {policy: "open"}}}}}}`, "channels.telegram.accounts.a.dm.policy", `"open" was removed`},
		{`{channels: {telegram: {groupPolicy: "all"}}}`, "channels.telegram.groupPolicy", `not one of "allowlist", "disabled", "open"`},
		{`{agents: {defaults: {sandbox: {mode: "some"}}}}`, "agents.defaults.sandbox.mode", `"some" is not one of "non-main", "off", "all"`},
		{`{agents: {defaults: {sandbox: {scope: "x"}}}}`, "agents.defaults.sandbox.scope", `"session", "agent", "shared"`},
		{`{agents: {defaults: {sandbox: {workspaceAccess: "x"}}}}`, "agents.defaults.sandbox.workspaceAccess", `"none", "ro", "rw"`},
		{`{agents: {defaults: {sandbox: {docker: {privileged: true}}}}}`, "agents.defaults.sandbox.docker.privileged", "not a sandbox"},
		{`{agents: {defaults: {backend: "claude"}}}`, "agents.defaults.backend", `"echo", "openai"`},
		{`{gateway: {auth: {token: 42}}}`, "gateway.auth.token", "is a number, want a string, a reference"},
		{`{gateway: {auth: {token: {"$enc": "v2"}}}}`, "gateway.auth.token", `version "v2"`},
		{`{version: 9}`, "version", "newer than this build"},
		{`{security: {acknowledged: [{id: "x", until: "soon"}]}}`, "security.acknowledged.0.until", "not a date"},
		{`{channels: {telegram: {botTokn: "x"}}}`, "channels.telegram.botTokn", `did you mean channels.telegram.botToken?`},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			c, err := Parse("m.json", []byte(tc.in))
			require.NoError(t, err)
			p := problemAt(c.Validate(), tc.path)
			require.NotNil(t, p, "%v", c.Validate())
			require.Contains(t, p.Message, tc.want)
			require.Equal(t, 1, p.Line)
		})
	}
	good := `{gateway: {auth: {token: "abcdefghijklmnopqrst0123456789AB"}}, channels: {telegram: {dm: {policy: "pairing", allowFrom: [123, "bob"]}}}}`
	c, err := Parse("m.json", []byte(good))
	require.NoError(t, err)
	require.Empty(t, c.Validate())
}

func TestGetSetUnset(t *testing.T) {
	c, err := Parse("moltbot.json", []byte(upstream))
	require.NoError(t, err)

	require.NoError(t, c.Set("gateway.auth.token", "abcdefghijklmnopqrst0123456789AB"))
	require.NoError(t, c.SetString("channels.discord.enabled", "false"))
	require.NoError(t, c.SetString("agents.defaults.sandbox.docker.binds", `["/a:/a"]`))
	require.NoError(t, c.SetString("gateway.port", "18790"))
	v, _ := c.Get("channels.discord.enabled")
	require.Equal(t, false, v)
	v, _ = c.Get("gateway.port")
	require.Equal(t, 18790.0, v)
	// Upstream keys present in the file can be read.
	v, err = c.Get("unknownTopKey.keep")
	require.NoError(t, err)
	require.Equal(t, 1.0, v)

	tests := []struct {
		name string
		err  error
		want string
		is   error
	}{
		{"unknown key with suggestion", c.Set("gateway.auth.tokn", "x"), "unknown config path gateway.auth.tokn; did you mean gateway.auth.token?", errs.ErrInvalidArgument},
		{"unknown key, list", c.Set("gateway.zzzzzzzzzz", "x"), "gateway has keys: auth, bind,", errs.ErrInvalidArgument},
		{"type mismatch", c.Set("gateway.controlUi.enabled", "yes"), "set gateway.controlUi.enabled: is a string, want a boolean", errs.ErrInvalidArgument},
		{"bool parse", c.SetString("channels.telegram.enabled", "maybe"), `"maybe" is not a boolean`, errs.ErrInvalidArgument},
		{"enum", c.Set("agents.defaults.sandbox.mode", "sometimes"), `"sometimes" is not one of`, errs.ErrInvalidArgument},
		{"bad envelope", c.Set("gateway.auth.password", map[string]any{"$enc": "v1"}), "envelope is missing", errs.ErrInvalidArgument},
		{"empty segment", c.Set("gateway..token", "x"), "empty segment", errs.ErrInvalidArgument},
		{"get missing", func() error { _, err := c.Get("gateway.remote.token"); return err }(), "gateway.remote.token is not set", errs.ErrNotFound},
		{"get unknown", func() error { _, err := c.Get("gatway.bind"); return err }(), "did you mean gateway?", errs.ErrInvalidArgument},
		{"unset missing", c.Unset("gateway.remote.token"), "not set", errs.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Error(t, tc.err)
			require.Contains(t, tc.err.Error(), tc.want)
			require.ErrorIs(t, tc.err, tc.is)
		})
	}
	require.NoError(t, c.Unset("gateway.controlUi.allowInsecureAuth"))
	_, err = c.Get("gateway.controlUi.allowInsecureAuth")
	require.ErrorIs(t, err, errs.ErrNotFound)

	env := envelope.Envelope{KID: "k1", Nonce: make([]byte, 12), CT: make([]byte, 20)}
	require.NoError(t, c.Set("gateway.remote.token", env.Map()))
	require.True(t, IsSecretPath("channels.slack.accounts.x.signingSecret"))
	require.True(t, IsSecretPath("models.providers.anthropic.apiKey"))
	require.False(t, IsSecretPath("gateway.bind"))
}

func TestResolveKeepsReferences(t *testing.T) {
	dir, roots := t.TempDir(), t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(roots, "tok.txt"), []byte("from-file\n"), 0o600))
	in := `{gateway: {auth: {token: "${GW_TOKEN}"}, remote: {token: "${file:tok.txt}"}}, channels: {telegram: {baseUrl: "https://${HOST}/api", botToken: "$${LITERAL}"}}}`
	c, err := Parse("m.json", []byte(in))
	require.NoError(t, err)
	env := map[string]string{"GW_TOKEN": "resolved-gw", "HOST": "example.org"}
	opts := ResolveOptions{StateDir: dir, FileRoots: []string{roots}, LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	require.NoError(t, c.Resolve(opts))
	v := c.View()
	require.Equal(t, StateReference, v.Gateway.Auth.Token.State)
	require.Equal(t, "resolved-gw", v.Gateway.Auth.Token.Plain)
	require.Equal(t, "${GW_TOKEN}", v.Gateway.Auth.Token.Ref)
	require.Equal(t, "from-file", v.Gateway.Remote.Plain)
	require.Equal(t, "https://example.org/api", v.Channels["telegram"].BaseURL)
	require.Equal(t, StatePlain, v.Channels["telegram"].BotToken.State, "an escaped reference is plain text")

	out, err := c.Marshal()
	require.NoError(t, err)
	require.Contains(t, string(out), `"${GW_TOKEN}"`)
	require.NotContains(t, string(out), "resolved-gw")

	states := map[string]SecretState{}
	for _, r := range SecretPaths(c.Raw) {
		states[r.Path] = r.State
	}
	require.Equal(t, map[string]SecretState{
		"gateway.auth.token":         StateReference,
		"gateway.remote.token":       StateReference,
		"channels.telegram.botToken": StatePlain,
	}, states)

	// Failures name the field and never the value.
	c2, err := Parse("m.json", []byte("{\n gateway: {auth: {token: \"${MISSING_VAR}\"}, remote: {token: \"${file:../../etc/passwd}\"}}}"))
	require.NoError(t, err)
	err = c2.Resolve(ResolveOptions{StateDir: dir, FileRoots: []string{roots}, LookupEnv: func(string) (string, bool) { return "", false }})
	require.ErrorContains(t, err, "m.json:2: gateway.auth.token: environment variable MISSING_VAR is not set")
	require.ErrorContains(t, err, "gateway.remote.token: file reference ${file:../../etc/passwd} leaves the file root")
	require.ErrorIs(t, err, errs.ErrInvalidArgument)
}

func TestViewDefaults(t *testing.T) {
	c, err := Parse("m.json", []byte(`{channels: {telegram: {botToken: "t", accounts: {b: {}}}}, models: {providers: {openai: {apiKey: "k", baseUrl: "http://x"}}}, logging: {redactSensitive: false}}`))
	require.NoError(t, err)
	v := c.View()
	require.Equal(t, "token", v.Gateway.Auth.Mode)
	require.Equal(t, "loopback", v.Gateway.Bind)
	tg := v.Channels["telegram"]
	require.True(t, tg.Enabled)
	require.Equal(t, "pairing", tg.DM.Policy)
	require.Equal(t, "allowlist", tg.Groups.Policy)
	require.Equal(t, "t", tg.BotToken.Plain)
	require.Equal(t, "channels.telegram.botToken", tg.BotToken.Path)
	require.Contains(t, tg.Accounts, "b")
	require.Equal(t, "non-main", v.Agents.Sandbox.Mode)
	require.Equal(t, "session", v.Agents.Sandbox.Scope)
	require.Equal(t, "none", v.Agents.Sandbox.WorkspaceAccess)
	require.Equal(t, "none", v.Agents.Sandbox.Docker.Network)
	require.Equal(t, DefaultSandboxImage, v.Agents.Sandbox.Docker.Image)
	require.Equal(t, "echo", v.Agents.Backend)
	require.Equal(t, "k", v.Models["openai"].APIKey.Plain)
	require.Equal(t, "off", v.Logging.RedactSensitive)
	require.False(t, v.Gateway.Auth.Token.IsSet())
}

func TestAuthProfileSecrets(t *testing.T) {
	tree := map[string]any{"version": 1.0, "profiles": map[string]any{
		"anthropic:default": map[string]any{"type": "api_key", "provider": "anthropic", "key": "sk-ant"},
		"openai:oauth":      map[string]any{"type": "oauth", "access": "a", "refresh": "${R}"},
	}}
	refs := AuthProfileSecrets("main", tree)
	require.Len(t, refs, 3)
	require.Equal(t, "auth-profiles/main/anthropic:default.key", refs[0].AAD)
	require.Equal(t, []string{"profiles", "anthropic:default", "key"}, refs[0].Keys)
	require.Equal(t, StatePlain, refs[0].State)
	require.Equal(t, StateReference, refs[2].State)
	require.Equal(t, "agents/main/agent/auth-profiles.json", AuthProfilesFile("main"))
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(upstream))
	f.Add([]byte(`{"a": [1, {"b": 'c'}], /* x */ d: .5,}`))
	// Depth and width: the 50,000-deep value that once took a gateway
	// past 3 GB, one at the limit, and a wide flat one (also committed
	// under testdata/fuzz/FuzzParse).
	f.Add([]byte(`{"agents": {"list": ` + nested(50000, `{"a":`, "}", "1") + `}}`))
	f.Add([]byte(`{"agents": {"list": ` + nested(62, "[", "]", "1") + `}}`))
	f.Add([]byte(`{"tools": [` + strings.Repeat(`{"a": 1, "b": [1, 2]},`, 20000) + `1]}`))
	f.Add([]byte(`{"a": 1, "a": 2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		_ = c.Validate()
		_ = SecretPaths(c.Raw)
		_ = c.View()
		out, err := c.Marshal()
		var le *LimitError
		if errors.As(err, &le) {
			return // indentation took it past the file limit: refused, not written
		}
		if err != nil {
			t.Fatalf("parsed config does not marshal: %v", err)
		}
		if _, err := Parse("f", out); err != nil {
			t.Fatalf("written config does not parse: %v", err)
		}
	})
}

// FuzzNesting drives depth and width directly: whatever the shape, Parse
// answers within the bounds, quickly, and never accepts a tree deeper than
// MaxDepth.
func FuzzNesting(f *testing.F) {
	f.Add(uint16(50000), uint16(1), byte('{'), false)
	f.Add(uint16(64), uint16(3), byte('['), false)
	f.Add(uint16(65), uint16(1), byte('['), true)
	f.Add(uint16(2), uint16(60000), byte('{'), true)
	f.Fuzz(func(t *testing.T, depth, width uint16, open byte, dup bool) {
		var b strings.Builder
		b.WriteString(`{"tools": `)
		for i := 0; i < int(depth); i++ {
			if open == '{' {
				b.WriteString(`{"k": `)
			} else {
				b.WriteString("[")
			}
		}
		b.WriteString("[")
		for i := 0; i < int(width); i++ {
			if dup && i%2 == 1 {
				b.WriteString(`{"x": 1, "x": 2},`)
			} else {
				b.WriteString(`{"x": 1},`)
			}
		}
		b.WriteString("0]")
		for i := 0; i < int(depth); i++ {
			if open == '{' {
				b.WriteString("}")
			} else {
				b.WriteString("]")
			}
		}
		b.WriteString("}")
		start := time.Now()
		_, err := Parse("f", []byte(b.String()))
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("Parse took %v for depth %d width %d", d, depth, width)
		}
		total := int(depth) + 2 + 1 // top object + the list + its element objects
		if width == 0 {
			total = int(depth) + 2
		}
		switch {
		case total > MaxDepth:
			require.ErrorContains(t, err, "the limit is 64")
		case dup && width > 1:
			require.ErrorContains(t, err, `key "x" appears twice`)
		case b.Len() > MaxFileBytes:
			require.ErrorContains(t, err, "the limit is 4 MiB")
		default:
			require.NoError(t, err)
		}
	})
}

func TestSealSecrets(t *testing.T) {
	c, err := Parse("m.json", []byte(`{gateway: {auth: {token: "plain"}, remote: {token: "${X}"}}}`))
	require.NoError(t, err)
	tree := Clone(c.Raw)
	done, err := SealSecrets(tree, SecretPaths(tree), func(pt []byte, aad string) (string, error) {
		require.Equal(t, "gateway.auth.token", aad)
		return envelope.Envelope{KID: "k1", Nonce: make([]byte, 12), CT: make([]byte, 16+len(pt))}.Encode()
	})
	require.NoError(t, err)
	require.Equal(t, []string{"gateway.auth.token"}, done)
	require.Equal(t, StateEnvelope, StateOf(tree["gateway"].(map[string]any)["auth"].(map[string]any)["token"]))
	require.Equal(t, "plain", c.Raw["gateway"].(map[string]any)["auth"].(map[string]any)["token"], "Clone is deep")
}
