package audit

import (
	"fmt"
	"strings"
	"time"
)

// Points each unacknowledged finding costs.
const (
	CriticalCost = 20
	WarnCost     = 5
)

// Score is the one scoring formula: start at 100, subtract CriticalCost per
// critical and WarnCost per warning, floor at 0. Info findings cost nothing
// (a clean system can reach 100) and acknowledged findings are muted. A
// finding id counts once however many paths it covers.
func Score(findings []Finding) int {
	s := 100
	for _, f := range findings {
		if f.Acknowledged {
			continue
		}
		switch f.Severity {
		case Critical:
			s -= CriticalCost
		case Warn:
			s -= WarnCost
		}
	}
	return max(s, 0)
}

// Band names a score: 90-100 excellent, 85-89 good, 70-84 fair, 50-69 poor,
// below 50 critical.
func Band(score int) string {
	switch {
	case score >= 90:
		return "excellent"
	case score >= 85:
		return "good"
	case score >= 70:
		return "fair"
	case score >= 50:
		return "poor"
	}
	return "critical"
}

// ack is one security.acknowledged entry.
type ack struct {
	id, reason string
	until      time.Time // zero: no expiry
	untilText  string
}

// acks parses security.acknowledged; malformed entries become a finding.
func (a *auditor) acks() []ack {
	sec, ok := a.in.Config["security"]
	if !ok {
		return nil
	}
	var bad []string
	defer func() {
		if len(bad) > 0 {
			a.add(Finding{
				ID: "security.acknowledged.invalid", Severity: Warn,
				Title:  "Malformed acknowledgements are ignored",
				Detail: strings.Join(bad, "; "),
				Remedy: fmt.Sprintf("fix security.acknowledged in %s: a list of {\"id\": \"<finding id>\", \"reason\": \"<why>\", \"until\": \"YYYY-MM-DD\"}", a.in.ConfigPath),
			})
		}
	}()
	secM, ok := sec.(map[string]any)
	if !ok {
		bad = append(bad, "security is "+typeName(sec)+", not an object")
		return nil
	}
	raw, ok := secM["acknowledged"]
	if !ok {
		return nil
	}
	list, ok := raw.([]any)
	if !ok {
		bad = append(bad, "security.acknowledged is "+typeName(raw)+", not a list")
		return nil
	}
	var out []ack
	for i, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			bad = append(bad, fmt.Sprintf("security.acknowledged[%d] is %s, not an object", i, typeName(e)))
			continue
		}
		id, _ := m["id"].(string)
		reason, _ := m["reason"].(string)
		if id == "" || strings.TrimSpace(reason) == "" {
			bad = append(bad, fmt.Sprintf("security.acknowledged[%d] needs a string id and a non-empty reason", i))
			continue
		}
		k := ack{id: id, reason: reason}
		if u, ok := m["until"]; ok {
			s, _ := u.(string)
			t, err := parseUntil(s)
			if err != nil {
				bad = append(bad, fmt.Sprintf("security.acknowledged[%d].until %s is not a date (YYYY-MM-DD or RFC 3339)", i, quoteOrType(u)))
				continue
			}
			k.until, k.untilText = t, s
		}
		out = append(out, k)
	}
	return out
}

func parseUntil(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, err
	}
	// A date acknowledges through the end of that day (UTC).
	return t.Add(24*time.Hour - time.Nanosecond), nil
}

// unmutable reports whether an acknowledgement of f is refused: criticals
// about gateway authentication stay in the score whatever the config says.
func unmutable(f Finding) bool {
	if f.Severity != Critical {
		return false
	}
	return strings.HasPrefix(f.ID, "gateway.auth.") || f.ID == "gateway.bind_no_auth" ||
		strings.HasPrefix(f.ID, "gateway.control_ui.")
}

// applyAcks marks acknowledged findings in place and returns the info
// findings explaining refused or expired acknowledgements.
func applyAcks(findings []Finding, acks []ack, now time.Time) []Finding {
	var refused, expired []string
	for _, k := range acks {
		if !k.until.IsZero() && now.After(k.until) {
			expired = append(expired, fmt.Sprintf("%s (until %s)", k.id, k.untilText))
			continue
		}
		for i := range findings {
			f := &findings[i]
			if f.ID != k.id {
				continue
			}
			if unmutable(*f) {
				refused = append(refused, f.ID)
				continue
			}
			f.Acknowledged, f.AckReason = true, k.reason
		}
	}
	var out []Finding
	if len(refused) > 0 {
		out = append(out, Finding{
			ID: "security.acknowledged.not_allowed", Severity: Info,
			Title:  "Some acknowledgements were ignored: critical authentication findings cannot be muted",
			Detail: "ignored: " + strings.Join(refused, ", "),
			Remedy: "fix the finding instead (`moltbot security audit --fix`), then remove its entry from security.acknowledged",
		})
	}
	if len(expired) > 0 {
		out = append(out, Finding{
			ID: "security.acknowledged.expired", Severity: Info,
			Title:  "Expired acknowledgements no longer apply",
			Detail: "expired: " + strings.Join(expired, ", "),
			Remedy: "fix the findings, or renew the entries' until date in security.acknowledged",
		})
	}
	return out
}
