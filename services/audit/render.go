package audit

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// JSONSchemaVersion is bumped on any incompatible change to the --json
// output.
const JSONSchemaVersion = 1

// ToolName names the audit in SARIF and JSON output.
const ToolName = "moltbot-audit"

// TextOptions tune Text.
type TextOptions struct {
	// Color adds ANSI colours (the caller decides: a TTY and no NO_COLOR).
	Color bool
}

const (
	ansiReset  = "\x1b[0m"
	ansiBold   = "\x1b[1m"
	ansiDim    = "\x1b[2m"
	ansiRed    = "\x1b[31m"
	ansiYellow = "\x1b[33m"
	ansiCyan   = "\x1b[36m"
	ansiGreen  = "\x1b[32m"
)

// Text writes the human report: score and band first, then findings
// grouped by severity, each with its remedy.
func Text(w io.Writer, r Report, o TextOptions) error {
	paint := func(code, s string) string {
		if !o.Color {
			return s
		}
		return code + s + ansiReset
	}
	bandColor := ansiGreen
	switch {
	case r.Score < 50:
		bandColor = ansiRed
	case r.Score < 85:
		bandColor = ansiYellow
	}
	c := r.Counts()
	acked := 0
	for _, f := range r.Findings {
		if f.Acknowledged {
			acked++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Security score: %s\n", paint(ansiBold+bandColor, fmt.Sprintf("%d/100 (%s)", r.Score, r.Band)))
	fmt.Fprintf(&b, "%d critical, %d warn, %d info", c[Critical], c[Warn], c[Info])
	if acked > 0 {
		fmt.Fprintf(&b, " (%d acknowledged, not scored)", acked)
	}
	b.WriteString("\n")
	for _, g := range []struct {
		sev   Severity
		label string
		color string
	}{{Critical, "CRITICAL", ansiRed}, {Warn, "WARN", ansiYellow}, {Info, "INFO", ansiCyan}} {
		var fs []Finding
		for _, f := range r.Findings {
			if f.Severity == g.sev {
				fs = append(fs, f)
			}
		}
		if len(fs) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n%s\n", paint(ansiBold+g.color, fmt.Sprintf("%s (%d)", g.label, len(fs))))
		for _, f := range fs {
			head := fmt.Sprintf("  [%s] %s", f.ID, f.Title)
			if f.Acknowledged {
				head = paint(ansiDim, head+"  (acknowledged: "+f.AckReason+")")
			}
			b.WriteString(head + "\n")
			if f.Detail != "" {
				fmt.Fprintf(&b, "      %s\n", f.Detail)
			}
			if f.Remedy != "" {
				fix := "fix: " + f.Remedy
				if f.Fixable {
					fix += "   [--fix]"
				}
				fmt.Fprintf(&b, "      %s\n", paint(ansiDim, fix))
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// JSONOptions tune JSON.
type JSONOptions struct {
	// GeneratedAt is written only when set, so that by default two runs on
	// the same state give byte-identical output.
	GeneratedAt time.Time
}

type jsonReport struct {
	SchemaVersion int            `json:"schema_version"`
	Tool          string         `json:"tool"`
	GeneratedAt   string         `json:"generated_at,omitempty"`
	Score         int            `json:"score"`
	Band          string         `json:"band"`
	Counts        jsonCounts     `json:"counts"`
	Findings      []jsonFindingT `json:"findings"`
}

type jsonCounts struct {
	Critical     int `json:"critical"`
	Warn         int `json:"warn"`
	Info         int `json:"info"`
	Acknowledged int `json:"acknowledged"`
}

type jsonFindingT struct {
	ID           string `json:"id"`
	Severity     string `json:"severity"`
	Title        string `json:"title"`
	Detail       string `json:"detail"`
	Remedy       string `json:"remedy"`
	Fixable      bool   `json:"fixable"`
	Acknowledged bool   `json:"acknowledged"`
	AckReason    string `json:"ack_reason,omitempty"`
}

// JSON writes the report in the stable --json schema (schema_version 1):
// findings sorted by severity then id, no timestamp unless asked.
func JSON(w io.Writer, r Report, o JSONOptions) error {
	fs := append([]Finding(nil), r.Findings...)
	sortFindings(fs)
	c := r.Counts()
	out := jsonReport{
		SchemaVersion: JSONSchemaVersion, Tool: ToolName,
		Score: r.Score, Band: r.Band,
		Counts:   jsonCounts{Critical: c[Critical], Warn: c[Warn], Info: c[Info]},
		Findings: make([]jsonFindingT, 0, len(fs)),
	}
	if !o.GeneratedAt.IsZero() {
		out.GeneratedAt = o.GeneratedAt.UTC().Format(time.RFC3339)
	}
	for _, f := range fs {
		if f.Acknowledged {
			out.Counts.Acknowledged++
		}
		out.Findings = append(out.Findings, jsonFindingT{
			ID: f.ID, Severity: string(f.Severity), Title: f.Title, Detail: f.Detail, Remedy: f.Remedy,
			Fixable: f.Fixable, Acknowledged: f.Acknowledged, AckReason: f.AckReason,
		})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// SARIF 2.1.0 (OASIS): only the parts we fill.

// SARIFSchemaURI is the $schema written in SARIF output (the schema's $id).
const SARIFSchemaURI = "https://raw.githubusercontent.com/oasis-tcs/sarif-spec/master/Schemata/sarif-schema-2.1.0.json"

type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool       sarifTool      `json:"tool"`
	Results    []sarifResult  `json:"results"`
	Properties map[string]any `json:"properties,omitempty"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	Version        string      `json:"version,omitempty"`
	InformationURI string      `json:"informationUri,omitempty"`
	Rules          []sarifRule `json:"rules"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifRule struct {
	ID                   string         `json:"id"`
	Name                 string         `json:"name,omitempty"`
	ShortDescription     sarifText      `json:"shortDescription"`
	FullDescription      *sarifText     `json:"fullDescription,omitempty"`
	Help                 sarifText      `json:"help"`
	DefaultConfiguration sarifConfig    `json:"defaultConfiguration"`
	Properties           map[string]any `json:"properties,omitempty"`
}

type sarifConfig struct {
	Level string `json:"level"`
}

type sarifResult struct {
	RuleID       string             `json:"ruleId"`
	RuleIndex    int                `json:"ruleIndex"`
	Level        string             `json:"level"`
	Message      sarifText          `json:"message"`
	Locations    []sarifLocation    `json:"locations,omitempty"`
	Suppressions []sarifSuppression `json:"suppressions,omitempty"`
	Properties   map[string]any     `json:"properties,omitempty"`
}

type sarifLocation struct {
	PhysicalLocation sarifPhysical `json:"physicalLocation"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
}

type sarifArtifact struct {
	URI string `json:"uri"`
}

// sarifSuppression carries kind and justification only: the 2.1.0
// committee schema names the state "state" and the errata "status", so
// neither is written.
type sarifSuppression struct {
	Kind          string `json:"kind"`
	Justification string `json:"justification,omitempty"`
}

// SARIFOptions tune SARIF.
type SARIFOptions struct {
	// ToolVersion is the moltbot version (optional).
	ToolVersion string
	// ConfigPath is the location every result points at (code scanning
	// needs one); default "moltbot.json".
	ConfigPath string
}

func sarifLevel(s Severity) string {
	switch s {
	case Critical:
		return "error"
	case Warn:
		return "warning"
	}
	return "note"
}

// securitySeverity is the CVSS-like score code scanning sorts by.
func securitySeverity(s Severity) string {
	switch s {
	case Critical:
		return "9.0"
	case Warn:
		return "5.0"
	}
	return "1.0"
}

// SARIF writes the report as a SARIF 2.1.0 log: one rule per finding id,
// one result per finding (acknowledged ones carry an external suppression
// with the reason).
func SARIF(w io.Writer, r Report, o SARIFOptions) error {
	fs := append([]Finding(nil), r.Findings...)
	sortFindings(fs)
	ids := make([]string, 0, len(fs))
	byID := map[string]Finding{}
	for _, f := range fs {
		if _, ok := byID[f.ID]; !ok {
			ids = append(ids, f.ID)
			byID[f.ID] = f
		}
	}
	sort.Strings(ids)
	index := map[string]int{}
	rules := make([]sarifRule, 0, len(ids))
	for i, id := range ids {
		f := byID[id]
		index[id] = i
		help := f.Title
		if f.Remedy != "" {
			help += ". Fix: " + f.Remedy
		}
		rules = append(rules, sarifRule{
			ID: id, Name: ruleName(id),
			ShortDescription:     sarifText{Text: f.Title},
			Help:                 sarifText{Text: help},
			DefaultConfiguration: sarifConfig{Level: sarifLevel(f.Severity)},
			Properties: map[string]any{
				"tags":              []string{"security"},
				"security-severity": securitySeverity(f.Severity),
			},
		})
	}
	loc := o.ConfigPath
	if loc == "" {
		loc = "moltbot.json"
	}
	uri := loc
	if filepath.IsAbs(loc) {
		uri = (&url.URL{Scheme: "file", Path: filepath.ToSlash(loc)}).String()
	} else {
		uri = (&url.URL{Path: filepath.ToSlash(loc)}).String()
	}
	results := make([]sarifResult, 0, len(fs))
	for _, f := range fs {
		msg := f.Title
		if f.Detail != "" {
			msg += ": " + f.Detail
		}
		res := sarifResult{
			RuleID: f.ID, RuleIndex: index[f.ID], Level: sarifLevel(f.Severity),
			Message:    sarifText{Text: msg},
			Locations:  []sarifLocation{{PhysicalLocation: sarifPhysical{ArtifactLocation: sarifArtifact{URI: uri}}}},
			Properties: map[string]any{"fixable": f.Fixable, "severity": string(f.Severity)},
		}
		if f.Acknowledged {
			res.Suppressions = []sarifSuppression{{Kind: "external", Justification: f.AckReason}}
		}
		results = append(results, res)
	}
	log := sarifLog{
		Schema: SARIFSchemaURI, Version: "2.1.0",
		Runs: []sarifRun{{
			Tool: sarifTool{Driver: sarifDriver{
				Name: ToolName, Version: o.ToolVersion,
				InformationURI: "https://github.com/moltbot/moltbot-secure", Rules: rules,
			}},
			Results:    results,
			Properties: map[string]any{"score": r.Score, "band": r.Band},
		}},
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(log)
}

// ruleName turns "fs.config.perms_world_readable" into
// "FsConfigPermsWorldReadable" (SARIF rule names are identifiers).
func ruleName(id string) string {
	var b strings.Builder
	up := true
	for _, r := range id {
		switch {
		case r == '.' || r == '_' || r == '-' || r == '<' || r == '>':
			up = true
		case up && r >= 'a' && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
			up = false
		default:
			b.WriteRune(r)
			up = false
		}
	}
	return b.String()
}
