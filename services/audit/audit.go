// Package audit is the security audit engine behind `moltbot security audit`
// and `moltbot doctor`: a pure function from a parsed config, a state-dir
// snapshot and optional live probe results to findings with stable ids, a
// score and a band. It never touches the network or the disk (SnapshotDir
// is the one helper that reads a directory, for the caller to pass in), and
// it never panics on bad input: a malformed config, a token of the wrong
// type or an unreadable file is itself a finding.
package audit

import (
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"time"

	"github.com/moltbot/moltbot-secure/services/config"
)

// Severity of a finding.
type Severity string

// Severities, worst first.
const (
	Critical Severity = "critical"
	Warn     Severity = "warn"
	Info     Severity = "info"
)

func (s Severity) rank() int {
	switch s {
	case Critical:
		return 0
	case Warn:
		return 1
	case Info:
		return 2
	}
	return 3
}

// Finding is one audit result. ID is stable across releases (scripts, acks
// and SARIF rules key on it); Detail names paths, never secret values.
type Finding struct {
	ID           string   `json:"id"`
	Severity     Severity `json:"severity"`
	Title        string   `json:"title"`
	Detail       string   `json:"detail"`
	Remedy       string   `json:"remedy"`
	Fixable      bool     `json:"fixable"`
	Acknowledged bool     `json:"acknowledged"`
	AckReason    string   `json:"ack_reason,omitempty"`

	// fixes are the safe remediations behind Fixable (see Plan).
	fixes []FixAction
}

// Report is the result of Run. Findings are sorted by severity, then id.
type Report struct {
	Findings []Finding `json:"findings"`
	Score    int       `json:"score"`
	Band     string    `json:"band"`
}

// Counts returns the number of findings per severity (acknowledged ones
// included: they are shown, only muted from the score).
func (r Report) Counts() map[Severity]int {
	c := map[Severity]int{Critical: 0, Warn: 0, Info: 0}
	for _, f := range r.Findings {
		c[f.Severity]++
	}
	return c
}

// Has reports whether a finding with id is present.
func (r Report) Has(id string) bool {
	_, ok := r.Find(id)
	return ok
}

// Find returns the finding with id.
func (r Report) Find(id string) (Finding, bool) {
	for _, f := range r.Findings {
		if f.ID == id {
			return f, true
		}
	}
	return Finding{}, false
}

// Entry is one file system object in a state-dir snapshot.
type Entry struct {
	// Rel is the slash-separated path relative to the state dir ("." for
	// the state dir itself).
	Rel   string
	Mode  fs.FileMode // type bits and permissions, from Lstat
	UID   int
	IsDir bool
	// Symlink is the link target when the entry is a symlink; Escapes says
	// it resolves outside the state dir (or dangles).
	Symlink string
	Escapes bool
	Size    int64
	// Content holds the bytes of small files worth scanning for plaintext
	// secrets (config, backups and stray copies, auth profiles, credentials).
	Content []byte
	// Err is why the entry could not be read (stat, read or list failure).
	Err string
}

// Snapshot is a state dir as seen by SnapshotDir (or built by a test).
type Snapshot struct {
	// Root is the absolute state dir path; empty means no snapshot was taken
	// and the file system checks are skipped.
	Root    string
	Entries []Entry
	// Truncated is set when the walk stopped at MaxEntries.
	Truncated bool
}

// KeyInfo is the secrets key status (from secretsd's Status RPC).
type KeyInfo struct {
	IDs     []string
	Primary string
	// CreatedAt is when the primary key was created.
	CreatedAt time.Time
}

// CertInfo is one certificate the caller looked at. Err is set when it
// could not be loaded (a not-exist error means missing).
type CertInfo struct {
	Name     string
	NotAfter time.Time
	Err      error
}

// ProbeResult is one live probe run by the caller (--deep).
type ProbeResult struct {
	// ID is appended to "deep." to form the finding id unless it already
	// starts with "deep.".
	ID     string
	OK     bool
	Title  string
	Detail string
	// Severity applies when the probe fails; default critical.
	Severity Severity
	Remedy   string
}

// Input is everything the engine looks at. Only Now is required; every
// missing part skips its checks.
type Input struct {
	// Config is the raw parsed config tree (references and envelopes kept
	// as written); nil when it is missing or could not be parsed.
	Config map[string]any
	// ConfigErr is why the config could not be read or parsed.
	ConfigErr error
	// ConfigPath is the config file path shown in remedies.
	ConfigPath string
	Snapshot   Snapshot
	// ProcessUID is the uid that should own the state dir; -1 skips the
	// owner check. TrustedUIDs may also own files (compose service users).
	ProcessUID  int
	TrustedUIDs []int
	Now         time.Time
	// KeyStatus is nil when secretsd was not asked; the snapshot's
	// keys/secrets.key is used instead.
	KeyStatus *KeyInfo
	// KeyRotationDays is the age above which secrets.key_not_rotated is
	// reported; 0 means DefaultKeyRotationDays.
	KeyRotationDays int
	// Certs nil means the certificates were not checked.
	Certs  []CertInfo
	Probes []ProbeResult
	// Token is the effective gateway token when the caller resolved it
	// ($CLAWDBOT_GATEWAY_TOKEN, the token file, a ${...} reference or a
	// decrypted envelope). It is only measured, never shown. TokenSource
	// names where it came from; EnvTokenSource (the environment,
	// which outranks the config) makes the token findings not fixable by
	// --fix: they explain instead.
	Token       string
	TokenSource string
	// IsSecretPath reports whether a dotted config path is a secret field;
	// nil uses config.IsSecretPath, the one classifier (no second list here).
	IsSecretPath func(path string) bool
	// Decrypted are the config model's problems in values only the gateway
	// can decrypt (config.DecryptedChecks, e.g. a weak encrypted token in
	// the file): reported with the ids and text `config validate` uses.
	Decrypted []config.Problem
	// CheckToken is the gateway token rule (auth.CheckToken); nil uses it.
	CheckToken func(string) error
}

// DefaultKeyRotationDays is when an unrotated secrets key is reported.
const DefaultKeyRotationDays = 90

// auditor collects findings for one Run.
type auditor struct {
	in    Input
	byID  map[string]*Finding
	order []string

	noAuth         bool // no usable gateway credential
	sawEnvelope    bool // some secret is encrypted (so the key matters)
	sawSecretField bool
	surface        surface
	sandboxModes   []string
}

// add records a finding, merging repeated ids: the worst severity wins,
// details are joined and fixes accumulate, so one problem in 40 files is
// one finding (and costs points once).
func (a *auditor) add(f Finding) {
	if old, ok := a.byID[f.ID]; ok {
		if f.Severity.rank() < old.Severity.rank() {
			old.Severity = f.Severity
			old.Title = f.Title
		}
		if f.Detail != "" && !strings.Contains(old.Detail, f.Detail) {
			old.Detail = joinDetail(old.Detail, f.Detail)
		}
		old.fixes = append(old.fixes, f.fixes...)
		old.Fixable = old.Fixable && f.Fixable
		return
	}
	c := f
	a.byID[f.ID] = &c
	a.order = append(a.order, f.ID)
}

// maxDetailItems bounds a merged detail so a state dir with thousands of
// wide files stays readable.
const maxDetailItems = 12

func joinDetail(old, add string) string {
	n := strings.Count(old, "; ") + 1
	switch {
	case n < maxDetailItems:
		return old + "; " + add
	case n == maxDetailItems:
		return old + "; ..."
	}
	return old
}

// Run audits in and returns the report. It never panics: a check that
// fails unexpectedly becomes an "audit.internal_error" finding.
func Run(in Input) Report {
	if in.IsSecretPath == nil {
		in.IsSecretPath = config.IsSecretPath
	}
	if in.CheckToken == nil {
		in.CheckToken = defaultCheckToken
	}
	if in.KeyRotationDays <= 0 {
		in.KeyRotationDays = DefaultKeyRotationDays
	}
	if in.ConfigPath == "" {
		in.ConfigPath = "moltbot.json"
	}
	a := &auditor{in: in, byID: map[string]*Finding{}}
	for _, c := range []struct {
		name string
		fn   func()
	}{
		{"config", a.checkConfig},
		{"auth", a.checkAuth},
		{"control_ui", a.checkControlUI},
		{"logging", a.checkLogging},
		{"channels", a.checkChannels},
		{"sandbox", a.checkSandbox},
		{"secrets", a.checkConfigSecrets},
		{"decrypted", a.checkDecrypted},
		{"files", a.checkFiles},
		{"keys", a.checkKeys},
		{"certs", a.checkCerts},
		{"probes", a.checkProbes},
		{"summary", a.summary},
	} {
		a.safely(c.name, c.fn)
	}
	var acks []ack
	a.safely("acknowledgements", func() { acks = a.acks() })
	findings := make([]Finding, 0, len(a.order))
	for _, id := range a.order {
		f := *a.byID[id]
		// "[--fix]" only where Plan will act (a non-object on the path,
		// e.g. "gateway": 5, blocks the edit).
		f.Fixable = f.Fixable && len(reachableFixes(f.fixes, in.Config)) > 0
		findings = append(findings, f)
	}
	findings = append(findings, applyAcks(findings, acks, in.Now)...)
	sortFindings(findings)
	score := Score(findings)
	return Report{Findings: findings, Score: score, Band: Band(score)}
}

// safely runs one check group; a panic (a bug, or an injected checker that
// throws) is turned into a finding so the rest of the audit still runs.
func (a *auditor) safely(name string, fn func()) {
	defer func() {
		if r := recover(); r != nil {
			a.add(Finding{
				ID: "audit.internal_error", Severity: Warn,
				Title:  "An audit check failed",
				Detail: fmt.Sprintf("the %s checks stopped: %v", name, r),
				Remedy: "report this bug with the output of `moltbot security audit --json`",
			})
		}
	}()
	fn()
}

func sortFindings(fs []Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		if ri, rj := fs[i].Severity.rank(), fs[j].Severity.rank(); ri != rj {
			return ri < rj
		}
		return fs[i].ID < fs[j].ID
	})
}
