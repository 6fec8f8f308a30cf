package audit

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

// FixKind says who executes a FixAction and how.
type FixKind string

// Fix kinds. The engine is pure: the caller runs generate_token (generate
// with auth.GenerateToken, seal through secretsd, set at Keys) and chmod
// (never following symlinks); ApplyConfigFixes does the config edits.
const (
	KindGenerateToken FixKind = "generate_token"
	KindChmod         FixKind = "chmod"
	KindSetConfig     FixKind = "set_config"
	KindRemoveConfig  FixKind = "remove_config"
)

// FixAction is one safe remediation.
type FixAction struct {
	// ID is the finding the action fixes.
	ID          string  `json:"id"`
	Description string  `json:"description"`
	Kind        FixKind `json:"kind"`
	// Path is the dotted config path (config kinds) or the state-dir
	// relative file path (chmod).
	Path string `json:"path"`
	// Keys address the config value (dots inside names stay intact).
	Keys []string `json:"keys,omitempty"`
	// Value is what set_config writes.
	Value any `json:"value,omitempty"`
	// Mode is what chmod sets.
	Mode fs.FileMode `json:"mode,omitempty"`
}

// SetArgs is how a set_config action's Value reaches the config store's
// Set(path, value, valueIsString, unset): a string as it is (JSON-quoting
// it wrote "\"allowlist\"", which failed the enum check), a bool or number
// in its plain form for the schema to type, anything else as JSON.
func (a FixAction) SetArgs() (value string, valueIsString bool, err error) {
	switch v := a.Value.(type) {
	case string:
		return v, true, nil
	case bool:
		return strconv.FormatBool(v), false, nil
	case int:
		return strconv.Itoa(v), false, nil
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), false, nil
	}
	b, err := json.Marshal(a.Value)
	if err != nil {
		return "", false, fmt.Errorf("fix %s: value for %s: %w", a.ID, a.Path, err)
	}
	return string(b), false, nil
}

// Plan lists the safe remediations for report's findings: generate a token,
// tighten permissions, group policy open -> allowlist, remove the deprecated
// flags. The actions are derived from in (so a report that went through
// JSON still plans) and kept only for findings report lists unacknowledged:
// an acknowledged finding is the operator's choice. Actions are deduplicated
// and sorted (config edits, then the token, then chmod by path), so the same
// input always gives the same plan.
func Plan(report Report, in Input) []FixAction {
	open := map[string]bool{}
	for _, f := range report.Findings {
		if !f.Acknowledged {
			open[f.ID] = true
		}
	}
	seen := map[string]bool{}
	var out []FixAction
	for _, f := range Run(in).Findings {
		if f.Acknowledged || !f.Fixable || !open[f.ID] {
			continue
		}
		for _, fx := range reachableFixes(f.fixes, in.Config) {
			k := string(fx.Kind) + "\x00" + strings.Join(fx.Keys, "\x00") + "\x00" + fx.Path
			if seen[k] {
				continue
			}
			seen[k] = true
			out = append(out, fx)
		}
	}
	order := map[FixKind]int{KindRemoveConfig: 0, KindSetConfig: 1, KindGenerateToken: 2, KindChmod: 3}
	sort.SliceStable(out, func(i, j int) bool {
		if oi, oj := order[out[i].Kind], order[out[j].Kind]; oi != oj {
			return oi < oj
		}
		return out[i].Path < out[j].Path
	})
	return out
}

// ApplyConfigFixes applies the set_config and remove_config actions to a
// deep copy of tree and returns it with one line per change. Other kinds are
// ignored (the caller runs them). Applying the same actions twice changes
// nothing the second time. tree itself is never modified.
func ApplyConfigFixes(tree map[string]any, actions []FixAction) (map[string]any, []string) {
	out, _ := deepCopy(tree).(map[string]any)
	if out == nil {
		out = map[string]any{}
	}
	var changes []string
	for _, a := range actions {
		if len(a.Keys) == 0 {
			continue
		}
		parent, ok := walkTo(out, a.Keys[:len(a.Keys)-1], a.Kind == KindSetConfig)
		last := a.Keys[len(a.Keys)-1]
		switch a.Kind {
		case KindRemoveConfig:
			if !ok {
				continue
			}
			if old, present := parent[last]; present {
				delete(parent, last)
				changes = append(changes, fmt.Sprintf("removed %s (was %s)", a.Path, quoteOrBool(old)))
			}
		case KindSetConfig:
			if !ok {
				continue
			}
			old, present := parent[last]
			if present && fmt.Sprint(old) == fmt.Sprint(a.Value) {
				continue
			}
			parent[last] = a.Value
			was := "unset"
			if present {
				was = quoteOrBool(old)
			}
			changes = append(changes, fmt.Sprintf("set %s to %s (was %s)", a.Path, quoteOrBool(a.Value), was))
		}
	}
	return out, changes
}

// walkTo returns the object at keys, creating missing objects when create
// is set; a non-object on the way stops it (nothing is overwritten).
func walkTo(m map[string]any, keys []string, create bool) (map[string]any, bool) {
	cur := m
	for _, k := range keys {
		next, ok := cur[k]
		if !ok {
			if !create {
				return nil, false
			}
			n := map[string]any{}
			cur[k] = n
			cur = n
			continue
		}
		nm, ok := next.(map[string]any)
		if !ok {
			return nil, false
		}
		cur = nm
	}
	return cur, true
}

// reachableFixes drops config edits with a non-object on the way
// (config.invalid_type is reported): they would fail, so they are not planned.
func reachableFixes(fixes []FixAction, tree map[string]any) []FixAction {
	var out []FixAction
	for _, fx := range fixes {
		if fx.Kind != KindChmod && len(fx.Keys) > 0 && !reachable(tree, fx.Keys[:len(fx.Keys)-1]) {
			continue
		}
		out = append(out, fx)
	}
	return out
}

// reachable reports whether keys lead through objects (or missing ones,
// which a set creates) in tree.
func reachable(tree map[string]any, keys []string) bool {
	cur := tree
	for _, k := range keys {
		next, ok := cur[k]
		if !ok {
			return true
		}
		if cur, ok = next.(map[string]any); !ok {
			return false
		}
	}
	return true
}

func deepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		l := make([]any, len(t))
		for i, e := range t {
			l[i] = deepCopy(e)
		}
		return l
	}
	return v
}
