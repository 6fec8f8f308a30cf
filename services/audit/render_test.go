package audit

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"
)

// richReport has every severity, an acknowledged finding, ids with dots and
// channel names, and text that needs escaping.
func richReport(t *testing.T) Report {
	in := baseInput(parse(t, `{"gateway":{"auth":{"token":"short\"quoted<>"},"controlUi":{"allowInsecureAuth":true}},
		"channels":{"tele gram":{"dm":{"policy":"open"}},"slack":{"groups":{"policy":"open"}}},
		"agents":{"defaults":{"sandbox":{"mode":"off"}}},
		"security":{"acknowledged":[{"id":"sandbox.mode_off","reason":"no docker \"here\""}]}}`))
	in.KeyStatus = &KeyInfo{IDs: []string{"k1"}, Primary: "k1", CreatedAt: now.AddDate(-1, 0, 0)}
	return Run(in)
}

func TestSARIFValidatesAgainstSchema(t *testing.T) {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	f, err := os.Open("testdata/sarif-schema-2.1.0.json")
	require.NoError(t, err)
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	require.NoError(t, err)
	require.NoError(t, c.AddResource("sarif-schema-2.1.0.json", doc))
	sch, err := c.Compile("sarif-schema-2.1.0.json")
	require.NoError(t, err)

	for name, r := range map[string]Report{
		"rich":  richReport(t),
		"clean": Run(baseInput(parse(t, `{"gateway":{"auth":{"token":"${file:pki/gateway.token}"}}}`))),
		"empty": {Score: 100, Band: "excellent"},
	} {
		for _, loc := range []string{"", "/home/ann/.moltbot/moltbot.json", "/tmp/with space/moltbot.json"} {
			var buf bytes.Buffer
			require.NoError(t, SARIF(&buf, r, SARIFOptions{ToolVersion: "0.1.0", ConfigPath: loc}))
			v, err := jsonschema.UnmarshalJSON(bytes.NewReader(buf.Bytes()))
			require.NoError(t, err)
			require.NoError(t, sch.Validate(v), "%s %q:\n%s", name, loc, buf.String())
		}
	}

	// The schema really rejects: a broken log must fail, or the test
	// proves nothing.
	bad, _ := jsonschema.UnmarshalJSON(strings.NewReader(`{"version":"2.1.0","runs":[{"tool":{"driver":{}},"results":[{"level":"fatal"}]}]}`))
	require.Error(t, sch.Validate(bad))
}

func TestSARIFStructure(t *testing.T) {
	r := richReport(t)
	var buf bytes.Buffer
	require.NoError(t, SARIF(&buf, r, SARIFOptions{}))
	var log struct {
		Schema  string `json:"$schema"`
		Version string `json:"version"`
		Runs    []struct {
			Tool struct {
				Driver struct {
					Name  string `json:"name"`
					Rules []struct {
						ID               string            `json:"id"`
						ShortDescription map[string]string `json:"shortDescription"`
						Help             map[string]string `json:"help"`
					} `json:"rules"`
				} `json:"driver"`
			} `json:"tool"`
			Results []struct {
				RuleID       string            `json:"ruleId"`
				RuleIndex    int               `json:"ruleIndex"`
				Level        string            `json:"level"`
				Message      map[string]string `json:"message"`
				Suppressions []map[string]any  `json:"suppressions"`
			} `json:"results"`
		} `json:"runs"`
	}
	require.NoError(t, json.Unmarshal(buf.Bytes(), &log))
	require.Equal(t, "2.1.0", log.Version)
	require.Equal(t, SARIFSchemaURI, log.Schema)
	require.Len(t, log.Runs, 1)
	run := log.Runs[0]
	require.Equal(t, "moltbot-audit", run.Tool.Driver.Name)
	require.Len(t, run.Tool.Driver.Rules, len(r.Findings), "one rule per finding id")
	require.Len(t, run.Results, len(r.Findings))
	levels := map[string]string{}
	for _, res := range run.Results {
		rule := run.Tool.Driver.Rules[res.RuleIndex]
		require.Equal(t, res.RuleID, rule.ID)
		require.NotEmpty(t, rule.ShortDescription["text"])
		require.NotEmpty(t, rule.Help["text"])
		require.NotEmpty(t, res.Message["text"])
		levels[res.RuleID] = res.Level
		if res.RuleID == "sandbox.mode_off" {
			require.Len(t, res.Suppressions, 1)
			require.Equal(t, "external", res.Suppressions[0]["kind"])
		}
	}
	require.Equal(t, "error", levels["gateway.auth.token_short"])
	require.Equal(t, "warning", levels["channels.slack.groups.open"])
	require.Equal(t, "note", levels["secrets.key_not_rotated"])
}

func TestJSONStable(t *testing.T) {
	var a, b bytes.Buffer
	require.NoError(t, JSON(&a, richReport(t), JSONOptions{}))
	require.NoError(t, JSON(&b, richReport(t), JSONOptions{}))
	require.Equal(t, a.String(), b.String(), "byte-identical across runs")
	require.NotContains(t, a.String(), "generated_at")

	var out struct {
		SchemaVersion int    `json:"schema_version"`
		Score         int    `json:"score"`
		Band          string `json:"band"`
		Counts        map[string]int
		Findings      []struct {
			ID, Severity string
			Acknowledged bool
			AckReason    string `json:"ack_reason"`
		}
	}
	require.NoError(t, json.Unmarshal(a.Bytes(), &out))
	require.Equal(t, JSONSchemaVersion, out.SchemaVersion)
	require.Equal(t, 1, out.Counts["acknowledged"])
	rank := map[string]int{"critical": 0, "warn": 1, "info": 2}
	for i := 1; i < len(out.Findings); i++ {
		p, c := out.Findings[i-1], out.Findings[i]
		require.True(t, rank[p.Severity] < rank[c.Severity] || (p.Severity == c.Severity && p.ID < c.ID))
	}

	var ts bytes.Buffer
	require.NoError(t, JSON(&ts, richReport(t), JSONOptions{GeneratedAt: now}))
	require.Contains(t, ts.String(), `"generated_at": "2026-03-01T12:00:00Z"`)
}

func TestText(t *testing.T) {
	r := richReport(t)
	var plain, color bytes.Buffer
	require.NoError(t, Text(&plain, r, TextOptions{}))
	require.NoError(t, Text(&color, r, TextOptions{Color: true}))
	s := plain.String()
	require.True(t, strings.HasPrefix(s, "Security score: "), s)
	require.NotContains(t, s, "\x1b[")
	require.Contains(t, color.String(), "\x1b[31m")
	ci, wi, ii := strings.Index(s, "\nCRITICAL"), strings.Index(s, "\nWARN"), strings.Index(s, "\nINFO")
	require.True(t, ci > 0 && ci < wi && wi < ii, s)
	require.Contains(t, s, "acknowledged: no docker")
	require.Contains(t, s, "[--fix]")
}

// TestPassedChecksPrintNoFix: a passed probe and the summary have nothing
// to fix, so the text shows no "fix:" line; a failed probe keeps its own.
func TestPassedChecksPrintNoFix(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ok      bool
		wantFix bool
	}{{"passed", true, false}, {"failed", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInput(parse(t, `{"gateway":{"auth":{"token":`+refToken+`}}}`))
			in.Probes = []ProbeResult{{ID: "secretsd", OK: tc.ok, Title: "secretsd answers", Remedy: "moltbot doctor"}}
			var b strings.Builder
			require.NoError(t, Text(&b, Run(in), TextOptions{}))
			require.Equal(t, tc.wantFix, strings.Contains(b.String(), "fix:"), b.String())
		})
	}
}
