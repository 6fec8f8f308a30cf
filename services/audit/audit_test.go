package audit

import (
	"encoding/json"
	"errors"
	"io/fs"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/envelope"
	"github.com/stretchr/testify/require"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// strongToken passes auth.CheckToken (43 chars, many distinct).
const strongToken = "Qx7vR2mK9pL4sT8wZ1nB6cF3hJ5dG0yAeUiOoPaSdFg"

func parse(t testing.TB, js string) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(js), &m), js)
	return m
}

func baseInput(cfg map[string]any) Input {
	return Input{Config: cfg, ConfigPath: "moltbot.json", ProcessUID: -1, Now: now}
}

func ids(r Report) []string {
	var out []string
	for _, f := range r.Findings {
		out = append(out, f.ID)
	}
	sort.Strings(out)
	return out
}

func testEnvelope(kid string) map[string]any {
	return envelope.Envelope{KID: kid, Nonce: make([]byte, envelope.NonceSize), CT: []byte("0123456789abcdef0123456789abcdef")}.Map()
}

// refToken is a fresh stack's token: a reference to the generated file.
const refToken = `"${file:pki/gateway.token}"`

type goldenCase struct {
	name  string
	cfg   string
	mod   func(*Input)
	want  []string // exact ids (summary.attack_surface is always there and omitted here)
	score int
	crit  []string // ids that must be critical
}

// goldenCases are the audit's golden configs (TestGolden, and
// TestFixesOnGoldenConfigsValidate applies every fix to each).
var goldenCases = []goldenCase{
	{name: "empty config: no token", cfg: `{}`, want: []string{"gateway.auth.token_missing"}, score: 80,
		crit: []string{"gateway.auth.token_missing"}},
	{name: "reference token, defaults", cfg: `{"gateway":{"auth":{"token":` + refToken + `}}}`, score: 100},
	{name: "seed 1: short plaintext token",
		cfg:  `{"gateway":{"auth":{"mode":"token","token":"short-token-123"}}}`,
		want: []string{"gateway.auth.token_plaintext", "gateway.auth.token_short"}, score: 75,
		crit: []string{"gateway.auth.token_short"}},
	{name: "seed 1: 24-char token (old minimum)",
		cfg:  `{"gateway":{"auth":{"token":"abcdefghijklmnopqrstuvwx"}}}`,
		want: []string{"gateway.auth.token_plaintext", "gateway.auth.token_short"}, score: 75},
	{name: "low entropy token",
		cfg:  `{"gateway":{"auth":{"token":"abababababababababababababababababababab"}}}`,
		want: []string{"gateway.auth.token_low_entropy", "gateway.auth.token_plaintext"}, score: 75,
		crit: []string{"gateway.auth.token_low_entropy"}},
	{name: "strong token in plain text",
		cfg:  `{"gateway":{"auth":{"token":"` + strongToken + `"}}}`,
		want: []string{"gateway.auth.token_plaintext"}, score: 95},
	{name: "token resolved by the caller is measured",
		cfg:  `{"gateway":{"auth":{"token":"${GW_TOKEN}"}}}`,
		mod:  func(in *Input) { in.Token, in.TokenSource = "tiny", "gateway.auth.token" },
		want: []string{"gateway.auth.token_short"}, score: 80},
	{name: "env token used when config has none",
		cfg:  `{}`,
		mod:  func(in *Input) { in.Token, in.TokenSource = strongToken, "$CLAWDBOT_GATEWAY_TOKEN" },
		want: nil, score: 100},
	{name: "token of the wrong type", cfg: `{"gateway":{"auth":{"token":12345}}}`,
		want: []string{"gateway.auth.token_invalid"}, score: 80, crit: []string{"gateway.auth.token_invalid"}},
	{name: "token object without $enc", cfg: `{"gateway":{"auth":{"token":{"value":"x"}}}}`,
		want: []string{"gateway.auth.token_invalid"}, score: 80},
	{name: "token envelope that does not validate", cfg: `{"gateway":{"auth":{"token":{"$enc":"v1","kid":"k1"}}}}`,
		want: []string{"gateway.auth.token_invalid"}, score: 80},
	{name: "bind lan without token", cfg: `{"gateway":{"bind":"lan"}}`,
		want: []string{"gateway.auth.token_missing", "gateway.bind_no_auth"}, score: 60,
		crit: []string{"gateway.bind_no_auth"}},
	{name: "bind lan with token", cfg: `{"gateway":{"bind":"0.0.0.0","auth":{"token":` + refToken + `}}}`, score: 100},
	{name: "auth mode none", cfg: `{"gateway":{"auth":{"mode":"none","token":` + refToken + `}}}`,
		want: []string{"gateway.auth.mode_invalid"}, score: 80},
	{name: "password mode, weak password",
		cfg:  `{"gateway":{"auth":{"mode":"password","password":"hunter2"}}}`,
		want: []string{"gateway.auth.password_weak", "secrets.plaintext"}, score: 75,
		crit: []string{"gateway.auth.password_weak"}},
	{name: "password mode, no password", cfg: `{"gateway":{"auth":{"mode":"password"}}}`,
		want: []string{"gateway.auth.password_missing"}, score: 80},
	{name: "seed 6: deprecated controlUi flags (false)",
		cfg:  `{"gateway":{"auth":{"token":` + refToken + `},"controlUi":{"allowInsecureAuth":false,"dangerouslyDisableDeviceAuth":false}}}`,
		want: []string{"gateway.control_ui.device_auth_disabled", "gateway.control_ui.insecure_auth"}, score: 60,
		crit: []string{"gateway.control_ui.device_auth_disabled", "gateway.control_ui.insecure_auth"}},
	{name: "controlUi flag true",
		cfg:  `{"gateway":{"auth":{"token":` + refToken + `},"controlUi":{"allowInsecureAuth":true}}}`,
		want: []string{"gateway.control_ui.insecure_auth"}, score: 80},
	{name: "seed 3: dm policy open with wildcard",
		cfg:  `{"gateway":{"auth":{"token":` + refToken + `}},"channels":{"telegram":{"dm":{"policy":"open","allowFrom":["*"]}}}}`,
		want: []string{"channels.telegram.dm.allowFrom.wildcard", "channels.telegram.dm.open"}, score: 75,
		crit: []string{"channels.telegram.dm.open"}},
	{name: "flat dmPolicy open in an account",
		cfg:  `{"gateway":{"auth":{"token":` + refToken + `}},"channels":{"slack":{"accounts":{"work":{"dmPolicy":"open"}}}}}`,
		want: []string{"channels.slack.dm.open"}, score: 80},
	{name: "allowlist with wildcard is open in effect",
		cfg:  `{"gateway":{"auth":{"token":` + refToken + `}},"channels":{"telegram":{"dm":{"policy":"allowlist","allowFrom":[123,"*"]}}}}`,
		want: []string{"channels.telegram.dm.allowFrom.wildcard"}, score: 80,
		crit: []string{"channels.telegram.dm.allowFrom.wildcard"}},
	{name: "disabled channel is skipped",
		cfg:   `{"gateway":{"auth":{"token":` + refToken + `}},"channels":{"telegram":{"enabled":false,"dm":{"policy":"open"}}}}`,
		score: 100},
	{name: "group policy open and group wildcard",
		cfg:  `{"gateway":{"auth":{"token":` + refToken + `}},"channels":{"telegram":{"groups":{"policy":"open","allowFrom":["*"]}}}}`,
		want: []string{"channels.telegram.groups.allowFrom.wildcard", "channels.telegram.groups.open"}, score: 90},
	{name: "upstream groupPolicy and per-group wildcard",
		cfg:  `{"gateway":{"auth":{"token":` + refToken + `}},"channels":{"discord":{"groupPolicy":"open","groups":{"g1":{"allowFrom":["*"]}}}}}`,
		want: []string{"channels.discord.groups.allowFrom.wildcard", "channels.discord.groups.open"}, score: 90},
	{name: "seed 2: sandbox mode off",
		cfg:  `{"gateway":{"auth":{"token":` + refToken + `}},"agents":{"defaults":{"sandbox":{"mode":"off"}}}}`,
		want: []string{"sandbox.mode_off"}, score: 95},
	{name: "workspace rw for non-main sessions",
		cfg:  `{"gateway":{"auth":{"token":` + refToken + `}},"agents":{"defaults":{"sandbox":{"workspaceAccess":"rw"}}}}`,
		want: []string{"sandbox.workspace_rw"}, score: 95},
	{name: "workspace ro is fine",
		cfg:   `{"gateway":{"auth":{"token":` + refToken + `}},"agents":{"defaults":{"sandbox":{"workspaceAccess":"ro"}}}}`,
		score: 100},
	{name: "workspace rw with mode off: only the owner mounts it",
		cfg:  `{"gateway":{"auth":{"token":` + refToken + `}},"agents":{"defaults":{"sandbox":{"mode":"off","workspaceAccess":"rw"}}}}`,
		want: []string{"sandbox.mode_off"}, score: 95},
	{name: "per-agent sandbox off",
		cfg:  `{"gateway":{"auth":{"token":` + refToken + `}},"agents":{"list":[{"id":"x","sandbox":{"mode":"off"}}]}}`,
		want: []string{"sandbox.mode_off"}, score: 95},
	{name: "dangerous docker settings",
		cfg: `{"gateway":{"auth":{"token":` + refToken + `}},"agents":{"defaults":{"sandbox":{"docker":{
				"network":"host","privileged":true,"binds":["/var/run/docker.sock:/var/run/docker.sock"],"user":"0:0","capAdd":["SYS_ADMIN"]}}}}}`,
		want: []string{"sandbox.docker.cap_add", "sandbox.docker.docker_socket_bind", "sandbox.docker.network_host",
			"sandbox.docker.privileged", "sandbox.docker.root_user"}, score: 30,
		crit: []string{"sandbox.docker.docker_socket_bind", "sandbox.docker.network_host", "sandbox.docker.privileged"}},
	{name: "logging redaction off",
		cfg:  `{"gateway":{"auth":{"token":` + refToken + `}},"logging":{"redactSensitive":"off"}}`,
		want: []string{"logging.redact_off"}, score: 95},
	{name: "plaintext channel and provider secrets",
		cfg: `{"gateway":{"auth":{"token":` + refToken + `},"remote":{"token":"remote-plain"}},
				"channels":{"telegram":{"botToken":"123:abc"}},"models":{"providers":{"openai":{"apiKey":"sk-live"}}}}`,
		want: []string{"secrets.plaintext"}, score: 95},
	{name: "secret of the wrong type", cfg: `{"gateway":{"auth":{"token":` + refToken + `}},"channels":{"telegram":{"botToken":42}}}`,
		want: []string{"secrets.invalid_value"}, score: 95},
	{name: "non-object sections",
		cfg:  `{"gateway":5,"channels":[1,2],"agents":"x","logging":true,"security":7}`,
		want: []string{"config.invalid_type", "gateway.auth.token_missing", "security.acknowledged.invalid"}, score: 70},
	{name: "numbers where strings are expected",
		cfg:  `{"gateway":{"bind":7,"auth":{"mode":1,"token":` + refToken + `}},"channels":{"telegram":{"dm":{"policy":3,"allowFrom":"*"}}}}`,
		want: []string{"config.invalid_type", "gateway.auth.mode_invalid"}, score: 75},
	{name: "acknowledged warning is muted",
		cfg: `{"gateway":{"auth":{"token":` + refToken + `}},"agents":{"defaults":{"sandbox":{"mode":"off"}}},
				"security":{"acknowledged":[{"id":"sandbox.mode_off","reason":"no docker on this host","until":"2026-12-31"}]}}`,
		want: []string{"sandbox.mode_off"}, score: 100},
	{name: "expired acknowledgement does not apply",
		cfg: `{"gateway":{"auth":{"token":` + refToken + `}},"agents":{"defaults":{"sandbox":{"mode":"off"}}},
				"security":{"acknowledged":[{"id":"sandbox.mode_off","reason":"temporary","until":"2026-01-01"}]}}`,
		want: []string{"sandbox.mode_off", "security.acknowledged.expired"}, score: 95},
	{name: "auth criticals cannot be acknowledged",
		cfg: `{"gateway":{"auth":{"token":"short"},"controlUi":{"allowInsecureAuth":true}},
				"security":{"acknowledged":[{"id":"gateway.auth.token_short","reason":"lab"},{"id":"gateway.control_ui.insecure_auth","reason":"lab"},
				{"id":"gateway.auth.token_plaintext","reason":"env-managed"}]}}`,
		want: []string{"gateway.auth.token_plaintext", "gateway.auth.token_short", "gateway.control_ui.insecure_auth",
			"security.acknowledged.not_allowed"}, score: 60},
	{name: "malformed acknowledgements",
		cfg:  `{"gateway":{"auth":{"token":` + refToken + `}},"security":{"acknowledged":[5,{"id":"x"},{"id":"y","reason":"r","until":"soon"}]}}`,
		want: []string{"security.acknowledged.invalid"}, score: 95},
	{name: "unparsable config", cfg: `null`,
		mod:  func(in *Input) { in.ConfigErr = errors.New("line 3: unexpected '}'") },
		want: []string{"config.invalid", "gateway.auth.token_missing"}, score: 60},
	{name: "missing config", cfg: `null`,
		want: []string{"config.missing", "gateway.auth.token_missing"}, score: 80},
	{name: "token check that panics is a finding",
		cfg:  `{"gateway":{"auth":{"token":"` + strongToken + `"}}}`,
		mod:  func(in *Input) { in.CheckToken = func(string) error { panic("boom") } },
		want: []string{"gateway.auth.token_plaintext", "gateway.auth.token_unchecked"}, score: 90},
}

func TestGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInput(parse(t, tc.cfg))
			if tc.mod != nil {
				tc.mod(&in)
			}
			r := Run(in)
			got := []string{}
			for _, id := range ids(r) {
				if id != "summary.attack_surface" {
					got = append(got, id)
				}
			}
			want := append([]string{}, tc.want...)
			sort.Strings(want)
			require.Equal(t, want, got, "findings: %+v", r.Findings)
			require.True(t, r.Has("summary.attack_surface"))
			require.Equal(t, tc.score, r.Score)
			require.Equal(t, Band(tc.score), r.Band)
			for _, id := range tc.crit {
				f, _ := r.Find(id)
				require.Equal(t, Critical, f.Severity, id)
			}
		})
	}
}

func TestAcknowledgedShownNotHidden(t *testing.T) {
	r := Run(baseInput(parse(t, `{"gateway":{"auth":{"token":`+refToken+`}},"agents":{"defaults":{"sandbox":{"mode":"off"}}},
		"security":{"acknowledged":[{"id":"sandbox.mode_off","reason":"no docker here"}]}}`)))
	f, ok := r.Find("sandbox.mode_off")
	require.True(t, ok)
	require.True(t, f.Acknowledged)
	require.Equal(t, "no docker here", f.AckReason)
	require.Empty(t, Plan(r, baseInput(nil)))
}

func TestScoreAndBand(t *testing.T) {
	mk := func(s ...Severity) []Finding {
		var out []Finding
		for _, x := range s {
			out = append(out, Finding{Severity: x})
		}
		return out
	}
	require.Equal(t, 100, Score(nil))
	require.Equal(t, 100, Score(mk(Info, Info, Info)), "info costs nothing")
	require.Equal(t, 75, Score(mk(Critical, Warn)))
	require.Equal(t, 0, Score(mk(Critical, Critical, Critical, Critical, Critical, Critical)), "floor at 0")
	require.Equal(t, 100, Score([]Finding{{Severity: Critical, Acknowledged: true}}))
	for score, band := range map[int]string{100: "excellent", 90: "excellent", 89: "good", 85: "good", 84: "fair",
		70: "fair", 69: "poor", 50: "poor", 49: "critical", 0: "critical"} {
		require.Equal(t, band, Band(score), score)
	}
}

func TestCertsKeysProbes(t *testing.T) {
	in := baseInput(parse(t, `{"gateway":{"auth":{"token":`+refToken+`}}}`))
	in.Certs = []CertInfo{
		{Name: "gateway", NotAfter: now.Add(400 * 24 * time.Hour)},
		{Name: "secretsd", NotAfter: now.Add(10 * 24 * time.Hour)},
		{Name: "pairingd", Err: fs.ErrNotExist},
	}
	in.KeyStatus = &KeyInfo{IDs: []string{"k1"}, Primary: "k1", CreatedAt: now.Add(-120 * 24 * time.Hour)}
	in.Probes = []ProbeResult{{ID: "gateway.no_token_refused", OK: true}, {ID: "sandbox.network_none", OK: false, Detail: "container reached 1.1.1.1"}}
	r := Run(in)
	f, _ := r.Find("certs.expiring")
	require.Equal(t, Warn, f.Severity)
	require.Contains(t, f.Detail, "secretsd")
	require.True(t, r.Has("certs.missing"))
	f, _ = r.Find("secrets.key_not_rotated")
	require.Equal(t, Info, f.Severity)
	f, _ = r.Find("deep.gateway.no_token_refused")
	require.Equal(t, Info, f.Severity)
	f, _ = r.Find("deep.sandbox.network_none")
	require.Equal(t, Critical, f.Severity)

	in.Certs = []CertInfo{{Name: "ca", NotAfter: now.Add(-time.Hour)}}
	in.KeyStatus = &KeyInfo{}
	in.Config = parse(t, `{"gateway":{"auth":{"token":`+refToken+`}},"channels":{"telegram":{"botToken":{}}}}`)
	in.Config["channels"].(map[string]any)["telegram"].(map[string]any)["botToken"] = testEnvelope("k1")
	r = Run(in)
	f, _ = r.Find("certs.expiring")
	require.Equal(t, Critical, f.Severity, "expired")
	f, _ = r.Find("secrets.key_missing")
	require.Equal(t, Critical, f.Severity, "envelopes without a key cannot be opened")
}

// TestSecretClassifierIsConfigs: with no injected classifier the audit
// flags exactly the plain secrets services/config classifies (one rule).
func TestSecretClassifierIsConfigs(t *testing.T) {
	for _, p := range []string{
		"gateway.remote.token", "channels.telegram.botToken", "channels.slack.appToken", "channels.slack.signingSecret",
		"channels.slack.accounts.a.botToken", "models.providers.openai.apiKey",
		"channels.telegram.name", "models.providers.openai.model", "logging.level",
	} {
		t.Run(p, func(t *testing.T) {
			tree := map[string]any{"gateway": map[string]any{"auth": map[string]any{"token": "${file:pki/gateway.token}"}}}
			require.NoError(t, config.SetIn(tree, strings.Split(p, "."), "plain-value"))
			in := baseInput(tree)
			in.IsSecretPath = nil
			f, found := Run(in).Find("secrets.plaintext")
			require.Equal(t, config.IsSecretPath(p), found, "%s: %+v", p, f)
			if found {
				require.Contains(t, f.Detail, p)
			}
		})
	}
}

func TestIsReference(t *testing.T) {
	require.True(t, isReference("${GW_TOKEN}"))
	require.True(t, isReference("${file:pki/gateway.token}"))
	require.True(t, isReference("Bearer ${TOKEN}"))
	require.False(t, isReference("$${LITERAL}"))
	require.False(t, isReference("${lower}"))
	require.False(t, isReference("${file:}"))
	require.False(t, isReference("plain"))
}

func TestFindingsSortedAndStable(t *testing.T) {
	cfg := `{"gateway":{"auth":{"token":"short"},"controlUi":{"allowInsecureAuth":true}},"agents":{"defaults":{"sandbox":{"mode":"off"}}},
		"channels":{"b":{"dm":{"policy":"open"}},"a":{"groups":{"policy":"open"}}}}`
	r1 := Run(baseInput(parse(t, cfg)))
	for i := 1; i < len(r1.Findings); i++ {
		a, b := r1.Findings[i-1], r1.Findings[i]
		require.True(t, a.Severity.rank() < b.Severity.rank() || (a.Severity == b.Severity && a.ID < b.ID), "%s before %s", a.ID, b.ID)
	}
	for range 5 {
		require.Equal(t, r1, Run(baseInput(parse(t, cfg))))
	}
	require.True(t, strings.HasPrefix(r1.Findings[0].ID, "channels.b"))
}
