package config

import (
	"testing"

	"github.com/moltbot/moltbot-secure/services/errs"
	"github.com/stretchr/testify/require"
)

// The config model refuses, at validation, values that sandboxd or the
// channels would refuse later, naming the field and the accepted format.
func TestValidateValuesLikeTheirConsumers(t *testing.T) {
	tests := []struct {
		name, in, path, msg string
	}{
		{"memory word", `{agents: {defaults: {sandbox: {docker: {memory: "lots"}}}}}`, "agents.defaults.sandbox.docker.memory", `"lots" is not a positive size; want a number of bytes or a number with a k, m or g suffix`},
		{"memory too small", `{agents: {defaults: {sandbox: {docker: {memory: "1m"}}}}}`, "agents.defaults.sandbox.docker.memory", "outside 32 MiB..64 GiB"},
		{"memory bytes too big", `{agents: {defaults: {sandbox: {docker: {memory: 1e15}}}}}`, "agents.defaults.sandbox.docker.memory", "outside 32 MiB..64 GiB"},
		{"memory fractional bytes", `{agents: {defaults: {sandbox: {docker: {memory: 33554432.5}}}}}`, "agents.defaults.sandbox.docker.memory", "not a whole number of bytes"},
		{"cpus", `{agents: {defaults: {sandbox: {docker: {cpus: 100}}}}}`, "agents.defaults.sandbox.docker.cpus", "100 outside (0, 64]"},
		{"cpus zero", `{agents: {defaults: {sandbox: {docker: {cpus: 0}}}}}`, "agents.defaults.sandbox.docker.cpus", "outside (0, 64]"},
		{"pids", `{agents: {defaults: {sandbox: {docker: {pidsLimit: 5}}}}}`, "agents.defaults.sandbox.docker.pidsLimit", "5 outside 16..4096"},
		{"network shape", `{agents: {defaults: {sandbox: {docker: {network: "my net"}}}}}`, "agents.defaults.sandbox.docker.network", `"my net" is not a Docker network name`},
		{"network container", `{agents: {defaults: {sandbox: {docker: {network: "container:x"}}}}}`, "agents.defaults.sandbox.docker.network", "joins another container's network namespace"},
		{"bind relative", `{agents: {defaults: {sandbox: {docker: {binds: ["data:/data"]}}}}}`, "agents.defaults.sandbox.docker.binds.0", "both paths must be absolute"},
		{"bind proc", `{agents: {defaults: {sandbox: {docker: {binds: ["/proc/1:/p"]}}}}}`, "agents.defaults.sandbox.docker.binds.0", "is under /proc, which exposes the host"},
		{"bind mode", `{agents: {defaults: {sandbox: {docker: {binds: ["/srv:/srv:rwx"]}}}}}`, "agents.defaults.sandbox.docker.binds.0", `mode "rwx" is not ro or rw`},
		{"workspaceQuota word", `{agents: {defaults: {sandbox: {workspaceQuota: "big"}}}}`, "agents.defaults.sandbox.workspaceQuota", `"big" is not a positive size; want a number of bytes or a number with a k, m or g suffix`},
		{"workspaceQuota too small", `{agents: {defaults: {sandbox: {workspaceQuota: "100k"}}}}`, "agents.defaults.sandbox.workspaceQuota", "outside 1 MiB..1 TiB"},
		{"workspaceQuota fractional", `{agents: {defaults: {sandbox: {workspaceQuota: 2097152.5}}}}`, "agents.defaults.sandbox.workspaceQuota", "not a positive whole number of bytes"},
		{"workspaceQuota bool", `{agents: {defaults: {sandbox: {workspaceQuota: true}}}}`, "agents.defaults.sandbox.workspaceQuota", "want"},
		{"misspelt workspaceQuota", `{agents: {defaults: {sandbox: {workspaceQuata: "1g"}}}}`, "agents.defaults.sandbox.workspaceQuata", "did you mean agents.defaults.sandbox.workspaceQuota?"},
		{"env name", `{agents: {defaults: {sandbox: {docker: {env: {"BAD-NAME": "x"}}}}}}`, "agents.defaults.sandbox.docker.env", `entry "BAD-NAME" is not NAME=value`},
		{"mode enum", `{agents: {defaults: {sandbox: {mode: "sometimes"}}}}`, "agents.defaults.sandbox.mode", `"sometimes" is not one of "non-main", "off", "all"`},
		{"scope enum", `{agents: {defaults: {sandbox: {scope: "global"}}}}`, "agents.defaults.sandbox.scope", "is not one of"},
		{"workspaceAccess enum", `{agents: {defaults: {sandbox: {workspaceAccess: "write"}}}}`, "agents.defaults.sandbox.workspaceAccess", "is not one of"},
		{"dmPolicy enum", `{channels: {telegram: {dmPolicy: "friends"}}}`, "channels.telegram.dmPolicy", "is not one of"},
		{"groupPolicy enum", `{channels: {telegram: {groupPolicy: "some"}}}`, "channels.telegram.groupPolicy", "is not one of"},
		{"misspelt channel", `{channels: {telegarm: {dmPolicy: "pairing"}}}`, "channels.telegarm", `unknown channel "telegarm"; did you mean channels.telegram?`},
		{"unknown channel far off", `{channels: {zzzzzzzz: {}}}`, "channels.zzzzzzzz", "known: "},
		{"misspelt nested key", `{agents: {defaults: {sandbox: {docker: {memroy: "1g"}}}}}`, "agents.defaults.sandbox.docker.memroy", "did you mean agents.defaults.sandbox.docker.memory?"},
		{"string for allowFrom", `{channels: {telegram: {allowFrom: "123"}}}`, "channels.telegram.allowFrom", "is a string, want an array"},
		{"string for group allowFrom", `{channels: {telegram: {groups: {allowFrom: "123"}}}}`, "channels.telegram.groups.allowFrom", "is a string, want an array"},
		{"string for binds", `{agents: {defaults: {sandbox: {docker: {binds: "/a:/a"}}}}}`, "agents.defaults.sandbox.docker.binds", "want an array"},
		{"string for agents.list", `{agents: {list: "main"}}`, "agents.list", "want an array"},
		{"string for fileRoots", `{secrets: {fileRoots: "/run/x"}}`, "secrets.fileRoots", "want an array"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("m.json", []byte(tc.in))
			require.NoError(t, err)
			p := problemAt(c.Validate(), tc.path)
			require.NotNil(t, p, "expected a problem at %s; got %v", tc.path, c.Validate())
			require.Equal(t, SevError, p.Severity)
			require.Contains(t, p.Message, tc.msg)
		})
	}
}

func TestValidateAcceptsGoodSandboxValues(t *testing.T) {
	for _, in := range []string{
		`{agents: {defaults: {sandbox: {docker: {memory: "512m", cpus: 1.5, pidsLimit: 128}}}}}`,
		`{agents: {defaults: {sandbox: {docker: {memory: 268435456}}}}}`,
		`{agents: {defaults: {sandbox: {docker: {memory: "1GiB"}}}}}`,
		`{agents: {defaults: {sandbox: {workspaceAccess: "rw"}}}}`,
		`{agents: {defaults: {sandbox: {workspaceAccess: "ro", workspaceQuota: "2g"}}}}`,
		`{agents: {defaults: {sandbox: {workspaceQuota: 1048576}}}}`,
		`{channels: {telegram: {groups: {"-100123": {requireMention: true}, policy: "allowlist", allowFrom: [1]}}, defaults: {groupPolicy: "allowlist"}}}`,
		`{agents: {list: [{id: "main"}]}, futureSection: {x: 1}}`,
	} {
		c, err := Parse("m.json", []byte(in))
		require.NoError(t, err)
		require.Empty(t, Errors(c.Validate()), in)
	}
}

// config set refuses a misspelt channel by path, before any value is set.
func TestSetRefusesUnknownChannel(t *testing.T) {
	c := New("m.json", nil)
	err := c.SetString("channels.telegarm.dmPolicy", "pairing")
	require.ErrorIs(t, err, errs.ErrInvalidArgument)
	require.Contains(t, err.Error(), "did you mean channels.telegram?")
	require.NoError(t, c.SetString("channels.telegram.dmPolicy", "pairing"))
	// A bare string where a list belongs is refused by type.
	err = c.SetString("channels.telegram.groups.allowFrom", "123")
	require.ErrorIs(t, err, errs.ErrInvalidArgument)
	require.Contains(t, err.Error(), "want an array")
}

func TestParseBytes(t *testing.T) {
	good := map[string]int64{"512m": 512 << 20, "1g": 1 << 30, "1GiB": 1 << 30, "64k": 64 << 10, "1048576": 1 << 20, " 2 MB ": 2 << 20}
	for in, want := range good {
		got, err := ParseBytes(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"lots", "", "-1m", "0", "NaN", "1t", "1e20g"} {
		_, err := ParseBytes(in)
		require.Error(t, err, in)
		require.Contains(t, err.Error(), "is not a positive size")
	}
}

// Upstream free-form places that hold secrets are classified like the
// known ones, so they are found, encrypted on write and never shown.
func TestFreeFormSecrets(t *testing.T) {
	in := `{
  env: {OPENAI_API_KEY: "sk-env", shellEnv: {enabled: true}, vars: {GROQ_KEY: "gsk"}},
  tools: {web: {search: {provider: "brave"}, apiKey: "brave-key"}, allow: ["exec"]},
  hooks: {token: "hook-secret", path: "/hooks"},
  talk: {apiKey: "eleven", voiceId: "v"},
  gateway: {auth: {token: "${GW}"}},
}`
	c, err := Parse("m.json", []byte(in))
	require.NoError(t, err)
	got := map[string]SecretState{}
	for _, r := range SecretPaths(c.Raw) {
		got[r.Path] = r.State
	}
	require.Equal(t, map[string]SecretState{
		"env.OPENAI_API_KEY": StatePlain,
		"env.vars.GROQ_KEY":  StatePlain,
		"tools.web.apiKey":   StatePlain,
		"hooks.token":        StatePlain,
		"talk.apiKey":        StatePlain,
		"gateway.auth.token": StateReference,
	}, got)
	for _, p := range []string{"env.OPENAI_API_KEY", "env.vars.X", "tools.web.apiKey", "hooks.token", "talk.apiKey",
		"gateway.auth.token", "channels.telegram.botToken", "channels.slack.accounts.a.signingSecret", "models.providers.x.apiKey"} {
		require.True(t, IsSecretPath(p), p)
	}
	for _, p := range []string{"env.shellEnv.enabled", "tools.allow", "hooks.path", "talk.voiceId", "gateway.bind", "channels.telegarm.botToken"} {
		require.False(t, IsSecretPath(p), p)
	}
	require.Empty(t, Errors(c.Validate()))
}

// A credential-named key in a free-form section is not classified; the
// operator is told it stays plaintext and how to move it.
func TestCredentialLikeKeysWarn(t *testing.T) {
	c, err := Parse("m.json", []byte(`{skills: {entries: {x: {apiKey: "plain", env: {MY_SECRET: "s", PASSWORD_REF: "${PW}"}}}}, messages: {maxTokens: 5, tokenizer: ""}, futureThing: {authToken: "t"}}`))
	require.NoError(t, err)
	ps := c.Validate()
	for _, p := range []string{"skills.entries.x.apiKey", "skills.entries.x.env.MY_SECRET", "futureThing.authToken"} {
		w := problemAt(ps, p)
		require.NotNil(t, w, "%s: %v", p, ps)
		require.Equal(t, SevWarning, w.Severity)
		require.Contains(t, w.Message, "plaintext")
		require.Contains(t, w.Fix, "moltbot config set "+p)
		require.NotContains(t, w.String(), `"plain"`, "a warning never shows the value")
	}
	for _, p := range []string{"skills.entries.x.env.PASSWORD_REF", "messages.maxTokens", "messages.tokenizer"} {
		require.Nil(t, problemAt(ps, p), "references, numbers and empty strings are not plaintext credentials: %s", p)
	}
}

// A migrated upstream config stays valid: upstream keys this gateway does
// not use are kept, and upstream secret fields are classified.
func TestUpstreamKeysKept(t *testing.T) {
	c, err := Parse("m.json", []byte(`{
  gateway: {reload: {mode: "hybrid"}, trustedProxies: ["10.0.0.1"]},
  channels: {
    telegram: {streamMode: "partial", textChunkLimit: 4000, replyToMode: "first", webhookSecret: "wh-secret"},
    slack: {userToken: "xoxp-1", dm: {enabled: true, groupEnabled: false}, channels: {"#general": {allow: true}}},
    discord: {token: "d", guilds: {"1": {requireMention: true}}},
  },
  agents: {defaults: {heartbeat: {every: "30m"}, maxConcurrent: 4, sandbox: {workspaceRoot: "/w", docker: {tmpfs: ["/tmp"], readOnlyRoot: true}}}},
}`))
	require.NoError(t, err)
	require.Empty(t, Errors(c.Validate()))
	for _, p := range []string{"channels.telegram.webhookSecret", "channels.slack.userToken", "channels.discord.token"} {
		require.True(t, IsSecretPath(p), p)
	}
	c, err = Parse("m.json", []byte(`{channels: {telegram: {zzzzzzzzzzzz: 1}}}`))
	require.NoError(t, err)
	p := problemAt(c.Validate(), "channels.telegram.zzzzzzzzzzzz")
	require.NotNil(t, p)
	require.Equal(t, SevError, p.Severity)
	require.Contains(t, p.Message, `unknown key "zzzzzzzzzzzz" (none of the`)
	require.Contains(t, p.Fix, "moltbot config set channels.telegram.zzzzzzzzzzzz --unset")
}
