package config

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/services/envelope"
)

const strongToken = "Zq8-vT3!mR6#pL1@wX9$kB4%nC7^dF2=hJ5*"

func envelopeValue() map[string]any {
	return envelope.Envelope{KID: "k1", Nonce: make([]byte, 12), CT: make([]byte, 20)}.Map()
}

// A weak token is reported with the same id and text whether it is plain,
// behind a reference or encrypted; only the named source differs.
func TestWeakTokenEverywhere(t *testing.T) {
	const weakHex = "0123456789abcdef0123456789abcdef0123456789abcdef" // 48 chars, 16 distinct
	tests := []struct {
		name      string
		raw       any
		env       map[string]string
		decrypted map[string]string
		id, src   string
	}{
		{"plain short", "short-token", nil, nil, IDTokenShort, "the token has 11 characters"},
		{"plain hex", weakHex, nil, nil, IDTokenLowEntropy, "the token has 48 characters, 16 distinct"},
		{"reference", "${GW_TOKEN}", map[string]string{"GW_TOKEN": weakHex}, nil, IDTokenLowEntropy, "the token from ${GW_TOKEN} has 48 characters, 16 distinct"},
		{"encrypted", envelopeValue(), nil, map[string]string{"gateway.auth.token": weakHex}, IDTokenLowEntropy, "the encrypted token has 48 characters, 16 distinct"},
		{"encrypted short", envelopeValue(), nil, map[string]string{"gateway.auth.token": "abc"}, IDTokenShort, "the encrypted token has 3 characters"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := New("m.json", nil)
			require.NoError(t, c.Set("gateway.auth.token", tc.raw))
			require.NoError(t, c.Resolve(ResolveOptions{LookupEnv: func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }}))
			ps := append(c.Validate(), DecryptedChecks(c, tc.decrypted)...)
			p := problemAt(ps, "gateway.auth.token")
			require.NotNil(t, p, "%v", ps)
			require.Equal(t, tc.id, p.ID)
			require.Equal(t, SevError, p.Severity)
			require.Contains(t, p.Message, "weak token: the rule is at least 32 characters with at least 20 distinct; "+tc.src)
			require.Contains(t, p.Fix, "moltbot token generate")
			for _, secret := range []string{weakHex, "short-token", "abc"} {
				require.NotContains(t, p.String(), secret, "never the token itself")
			}
		})
	}
	// A strong encrypted token has nothing to report; without decrypted
	// values Validate leaves the envelope alone.
	c := New("m.json", nil)
	require.NoError(t, c.Set("gateway.auth.token", envelopeValue()))
	require.Nil(t, problemAt(c.Validate(), "gateway.auth.token"))
	require.Empty(t, DecryptedChecks(c, map[string]string{"gateway.auth.token": strongToken}))
	require.Empty(t, DecryptedChecks(c, nil))
}

// Values behind references are judged as their consumer will see them.
func TestValuesBehindReferences(t *testing.T) {
	env := map[string]string{"DM": "open", "GP": "everyone", "MEM": "lots", "MODE": "sometimes", "OK": "pairing"}
	c, err := Parse("m.json", []byte(`{
  channels: {telegram: {dmPolicy: "${DM}", groupPolicy: "${GP}", accounts: {a: {dm: {policy: "${OK}"}}}}},
  agents: {defaults: {sandbox: {mode: "${MODE}", docker: {memory: "${MEM}"}}}},
}`))
	require.NoError(t, err)
	require.NoError(t, c.Resolve(ResolveOptions{LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}))
	ps := c.Validate()
	tests := []struct{ path, msg string }{
		{"channels.telegram.dmPolicy", `"open" was removed: anyone could talk to the bot; use "pairing" (each new sender gets a code you approve) (the value of ${DM})`},
		{"channels.telegram.groupPolicy", `"everyone" is not one of "allowlist", "disabled", "open" (the value of ${GP})`},
		{"agents.defaults.sandbox.docker.memory", `"lots" is not a positive size; want a number of bytes or a number with a k, m or g suffix, e.g. 512m or 1g (32 MiB..64 GiB) (the value of ${MEM})`},
		{"agents.defaults.sandbox.mode", `"sometimes" is not one of "non-main", "off", "all" (the value of ${MODE})`},
	}
	for _, tc := range tests {
		p := problemAt(ps, tc.path)
		require.NotNil(t, p, "%s: %v", tc.path, ps)
		require.Equal(t, SevError, p.Severity)
		require.Equal(t, tc.msg, p.Message)
	}
	require.Nil(t, problemAt(ps, "channels.telegram.accounts.a.dm.policy"), "a good value behind a reference")
	require.Len(t, Errors(ps), len(tests))
}
