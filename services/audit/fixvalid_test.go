package audit

import (
	"crypto/rand"
	"strings"
	"testing"

	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/stretchr/testify/require"
)

// applyLikeStore applies one planned action to c the way the gateway's
// config store does (configstore.Store.Set: a secret path or a string value
// is set as it is, anything else is typed by the schema from its text).
func applyLikeStore(t *testing.T, c *config.Config, a FixAction) {
	t.Helper()
	switch a.Kind {
	case KindSetConfig:
		v, isString, err := a.SetArgs()
		require.NoError(t, err)
		if isString || config.IsSecretPath(a.Path) {
			require.NoError(t, c.Set(a.Path, v), a.Path)
		} else {
			require.NoError(t, c.SetString(a.Path, v), a.Path)
		}
	case KindRemoveConfig:
		require.NoError(t, c.Unset(a.Path), a.Path)
	case KindGenerateToken:
		tok, err := auth.GenerateToken(rand.Reader)
		require.NoError(t, err)
		require.NoError(t, c.Set(a.Path, tok), a.Path)
	}
}

// TestFixesOnGoldenConfigsValidate applies every planned fix to every
// golden config and checks that the result validates at each fixed path,
// adds no validation error, and that the finding it fixes is gone.
func TestFixesOnGoldenConfigsValidate(t *testing.T) {
	applied := map[FixKind]int{}
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInput(parse(t, tc.cfg))
			if tc.mod != nil {
				tc.mod(&in)
			}
			if in.Config == nil || in.ConfigErr != nil {
				return // nothing to edit: config fixes are refused on an unparsable config
			}
			rep := Run(in)
			plan := Plan(rep, in)
			c := config.New("moltbot.json", config.Clone(in.Config))
			before := config.Errors(c.Validate())
			fixed := map[string]bool{}
			for _, a := range plan {
				if a.Kind == KindChmod {
					continue
				}
				applyLikeStore(t, c, a)
				applied[a.Kind]++
				fixed[a.ID] = true
				for _, p := range config.Errors(c.Validate()) {
					require.False(t, p.Path == a.Path || strings.HasPrefix(p.Path, a.Path+"."),
						"fix %q left %s invalid: %s", a.Description, a.Path, p.String())
				}
			}
			after := config.Errors(c.Validate())
			require.LessOrEqual(t, len(after), len(before), "fixes added validation errors: %v", after)

			again := baseInput(c.Raw)
			if tc.mod != nil {
				tc.mod(&again)
			}
			again.Token, again.TokenSource = "", "" // the generated token replaced the one the caller resolved
			if again.CheckToken != nil {
				again.CheckToken = nil // the panicking rule is the finding, not the token
			}
			rep2 := Run(again)
			for id := range fixed {
				require.False(t, rep2.Has(id), "finding %s is still reported after its fix: %+v", id, rep2.Findings)
			}
		})
	}
	// The golden set exercises each config fix kind.
	for _, k := range []FixKind{KindSetConfig, KindRemoveConfig, KindGenerateToken} {
		require.Positive(t, applied[k], "no golden config planned a %s fix", k)
	}
}

func TestSetArgs(t *testing.T) {
	for _, tc := range []struct {
		v        any
		want     string
		isString bool
	}{
		{"allowlist", "allowlist", true},
		{true, "true", false},
		{3.5, "3.5", false},
		{7, "7", false},
		{[]any{"a"}, `["a"]`, false},
	} {
		got, isString, err := FixAction{Value: tc.v}.SetArgs()
		require.NoError(t, err)
		require.Equal(t, tc.want, got)
		require.Equal(t, tc.isString, isString)
	}
}

// TestTokenFixBySource: a weak token from the config (plain, encrypted or a
// reference the caller resolved) is replaced by --fix; one from the
// environment is explained instead, since a config token would lose to it.
func TestTokenFixBySource(t *testing.T) {
	for _, tc := range []struct {
		name, cfg, token, source string
		fixable                  bool
	}{
		{"plain in config", `{"gateway":{"auth":{"token":"short-token-123"}}}`, "", "", true},
		{"encrypted in config", `{"gateway":{"auth":{"token":{"$enc":"v1","kid":"k1","nonce":"AAAAAAAAAAAAAAAA","ct":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}}}}`,
			"0123456789abcdef0123456789abcdef0123456789abcdef", "moltbot.json: gateway.auth.token", true},
		{"reference in config", `{"gateway":{"auth":{"token":"${GW_TOKEN}"}}}`, "tiny", "gateway.auth.token", true},
		{"token file (read after the config)", `{}`, "tiny", "$CLAWDBOT_GATEWAY_TOKEN_FILE", true},
		{"environment", `{}`, "tiny", EnvTokenSource, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInput(parse(t, tc.cfg))
			in.Token, in.TokenSource = tc.token, tc.source
			rep := Run(in)
			var f Finding
			for _, x := range rep.Findings {
				if x.ID == "gateway.auth.token_short" || x.ID == "gateway.auth.token_low_entropy" {
					f = x
				}
			}
			require.NotEmpty(t, f.ID, "weak token not reported: %+v", rep.Findings)
			require.Equal(t, tc.fixable, f.Fixable)
			var kinds []FixKind
			for _, a := range Plan(rep, in) {
				kinds = append(kinds, a.Kind)
			}
			if tc.fixable {
				require.Contains(t, kinds, KindGenerateToken)
				return
			}
			require.NotContains(t, kinds, KindGenerateToken)
			require.Contains(t, f.Remedy, "CLAWDBOT_GATEWAY_TOKEN")
			require.Contains(t, f.Remedy, "restart")
			require.False(t, strings.HasPrefix(f.Remedy, "moltbot security audit --fix"), f.Remedy)
		})
	}
}

// TestUnreachableFixNotOffered: with "gateway": 5 the token cannot be set,
// so the finding is not marked fixable and nothing is planned for it.
func TestUnreachableFixNotOffered(t *testing.T) {
	in := baseInput(parse(t, `{"gateway":5}`))
	rep := Run(in)
	f, ok := rep.Find("gateway.auth.token_missing")
	require.True(t, ok)
	require.False(t, f.Fixable)
	require.Empty(t, Plan(rep, in))
	f, _ = Run(baseInput(parse(t, `{}`))).Find("gateway.auth.token_missing")
	require.True(t, f.Fixable)
}

// TestDecryptedProblems: a weak token only the gateway can decrypt (in the
// file, not yet running) is reported from Input.Decrypted with the id and
// text `config validate` gives, fixable by --fix; the running token's
// finding of the same id merges with it rather than doubling the cost.
func TestDecryptedProblems(t *testing.T) {
	enc := `{"gateway":{"auth":{"token":{"$enc":"v1","kid":"k1","nonce":"AAAAAAAAAAAAAAAA","ct":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}}}}`
	weak := config.Problem{ID: config.IDTokenLowEntropy, Path: "gateway.auth.token", Severity: config.SevError,
		Message: "weak token: the rule is at least 32 characters with at least 20 distinct; the encrypted token has 48 characters, 16 distinct",
		Fix:     "moltbot security audit --fix"}
	strong := "Zq8-vT3!mR6#pL1@wX9$kB4%nC7^dF2=hJ5*"
	for _, tc := range []struct {
		name       string
		running    string
		decrypted  []config.Problem
		wantIDs    int
		wantDetail string
		wantCost   int // score points the decrypted problems add
	}{
		{"weak in the file, strong running", strong, []config.Problem{weak}, 1, "16 distinct", 20},
		{"weak in the file and running", "0123456789abcdef0123456789abcdef0123456789abcdef", []config.Problem{weak}, 1, "16 distinct", 0},
		{"strong everywhere", strong, nil, 0, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInput(parse(t, enc))
			in.Token, in.TokenSource = tc.running, "moltbot.json: gateway.auth.token"
			base := Run(in).Score
			in.Decrypted = tc.decrypted
			rep := Run(in)
			require.Equal(t, base-tc.wantCost, rep.Score, "a weak token is one critical, counted once")
			var got []Finding
			for _, f := range rep.Findings {
				if f.ID == config.IDTokenShort || f.ID == config.IDTokenLowEntropy {
					got = append(got, f)
				}
			}
			require.Len(t, got, tc.wantIDs, "%+v", rep.Findings)
			if tc.wantIDs == 0 {
				return
			}
			require.Equal(t, Critical, got[0].Severity)
			require.Contains(t, got[0].Detail, tc.wantDetail)
			require.True(t, got[0].Fixable)
			var kinds []FixKind
			for _, a := range Plan(rep, in) {
				kinds = append(kinds, a.Kind)
			}
			require.Contains(t, kinds, KindGenerateToken)
		})
	}
}
