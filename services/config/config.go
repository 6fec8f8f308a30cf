package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/moltbot/moltbot-secure/services/envelope"
	"github.com/moltbot/moltbot-secure/services/errs"
	"github.com/titanous/json5"
)

// CurrentVersion is the newest config "version" this build understands; a
// missing version means an upstream file (0).
const CurrentVersion = 1

// FileName is the config file's name inside the state dir.
const FileName = "moltbot.json"

// Config is one loaded config file.
type Config struct {
	// File names the source in errors and problems ("" for in-memory input).
	File string
	// Raw is the tree as read (or as edited by Set/Unset): the source of truth.
	Raw map[string]any
	// Resolved is Raw with references replaced; nil until Resolve.
	Resolved map[string]any

	lines  map[string]int
	schema *node
	// decrypted marks the fields DecryptedChecks filled in from envelopes,
	// so messages can say the value was the encrypted one.
	decrypted map[string]string
}

// ParseError is a file that is not valid JSON5 or not an object.
type ParseError struct {
	File   string
	Line   int
	Column int
	Msg    string
}

func (e *ParseError) Error() string {
	loc := e.File
	if loc == "" {
		loc = "config"
	}
	if e.Line > 0 {
		loc += ":" + strconv.Itoa(e.Line) + ":" + strconv.Itoa(e.Column)
	}
	return loc + ": " + e.Msg + " (the file must be a JSON5 object)"
}

// Unwrap makes a ParseError an errs.ErrInvalidArgument.
func (e *ParseError) Unwrap() error { return errs.ErrInvalidArgument }

// notExistError is a missing config file. It is both errs.ErrNotFound
// (the gateway's code mapping) and fs.ErrNotExist (what the audit, doctor
// and the offline paths test for: no file means the documented defaults),
// so no caller can take a missing file for an unreadable one.
type notExistError struct{ path string }

func (e *notExistError) Error() string {
	return fmt.Sprintf("config %s does not exist: %v", e.path, errs.ErrNotFound)
}

func (e *notExistError) Unwrap() []error { return []error{errs.ErrNotFound, os.ErrNotExist} }

// Load reads and parses the file at path.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, &notExistError{path: path}
		}
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	defer f.Close()
	b, err := ReadBounded(f, Text{Where: path, Noun: "file", MaxBytes: MaxFileBytes})
	if err != nil {
		return nil, err
	}
	return Parse(path, b)
}

// Parse parses JSON5 data; file is used in messages only.
func Parse(file string, data []byte) (c *Config, err error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, &ParseError{File: file, Msg: "file is empty"}
	}
	where := file
	if where == "" {
		where = "config"
	}
	if err := CheckText(data, Text{Where: where, Noun: "file", MaxBytes: MaxFileBytes}); err != nil {
		return nil, err
	}
	// json5 is a fork of an old encoding/json; guard against a panic on
	// hostile input turning into a crash of the gateway.
	defer func() {
		if r := recover(); r != nil {
			c, err = nil, &ParseError{File: file, Msg: fmt.Sprintf("cannot parse: %v", r)}
		}
	}()
	var v any
	if err := json5.Unmarshal(data, &v); err != nil {
		pe := &ParseError{File: file, Msg: err.Error()}
		var se *json5.SyntaxError
		if errors.As(err, &se) {
			pe.Line, pe.Column = lineCol(data, int(se.Offset))
		}
		return nil, pe
	}
	tree, ok := v.(map[string]any)
	if !ok {
		return nil, &ParseError{File: file, Msg: "top level is " + typeName(v) + ", not an object"}
	}
	c = &Config{File: file, Raw: tree, lines: indexLines(data), schema: schema()}
	if p, bad := firstNonFinite(tree, ""); bad {
		return nil, &ParseError{File: file, Line: c.lines[p], Column: 1, Msg: p + ": Infinity and NaN cannot be written as JSON"}
	}
	return c, nil
}

// New wraps an existing tree (e.g. built in memory).
func New(file string, tree map[string]any) *Config {
	if tree == nil {
		tree = map[string]any{}
	}
	return &Config{File: file, Raw: tree, lines: map[string]int{}, schema: schema()}
}

func lineCol(data []byte, off int) (int, int) {
	off = min(max(off, 0), len(data))
	line := 1 + bytes.Count(data[:off], []byte{'\n'})
	col := off - bytes.LastIndexByte(data[:off], '\n')
	return line, col
}

func firstNonFinite(v any, path string) (string, bool) {
	switch t := v.(type) {
	case float64:
		return path, math.IsInf(t, 0) || math.IsNaN(t)
	case map[string]any:
		keys := sortedKeys(t)
		for _, k := range keys {
			if p, bad := firstNonFinite(t[k], joinPath(path, k)); bad {
				return p, true
			}
		}
	case []any:
		for i, e := range t {
			if p, bad := firstNonFinite(e, joinPath(path, strconv.Itoa(i))); bad {
				return p, true
			}
		}
	}
	return "", false
}

// Marshal writes the raw tree as JSON: 2-space indent, sorted keys, trailing
// newline. References and envelopes are written as they are in Raw.
func (c *Config) Marshal() ([]byte, error) { return MarshalTree(c.Raw) }

// MarshalTree is Marshal for any tree (auth-profiles files too).
func MarshalTree(tree map[string]any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(tree); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	// Indentation can make a deep value many times larger once written; a
	// file that would not load again is refused before it is written.
	if buf.Len() > MaxFileBytes {
		return nil, &LimitError{Where: FileName, Msg: fmt.Sprintf("file would be %d bytes once written; the limit is %s", buf.Len(), sizeName(MaxFileBytes)),
			Fix: "store large or deeply nested data outside the config"}
	}
	return buf.Bytes(), nil
}

// Line returns the source line of a dotted path, 0 when unknown (set in
// memory, or not in the file).
func (c *Config) Line(path string) int { return c.lines[path] }

func (c *Config) where(path string) string {
	f := c.File
	if f == "" {
		f = FileName
	}
	if l := c.lines[path]; l > 0 {
		return fmt.Sprintf("%s:%d", f, l)
	}
	return f
}

// Get returns the raw value at a dotted path (envelopes and references as
// stored).
func (c *Config) Get(path string) (any, error) {
	keys, err := c.checkPath(path, false)
	if err != nil {
		return nil, err
	}
	v, ok := GetIn(c.Raw, keys)
	if !ok {
		return nil, fmt.Errorf("%s: %s is not set: %w", c.where(path), path, errs.ErrNotFound)
	}
	return v, nil
}

// Set stores v at a dotted path, creating parent objects. The path must be in
// the schema (or below a free-form upstream section) and v must have the
// field's type; a secret field takes a string or an envelope object.
func (c *Config) Set(path string, v any) error {
	keys, err := c.checkPath(path, true)
	if err != nil {
		return err
	}
	if err := checkValueBounds(path, len(keys), v); err != nil {
		return err
	}
	n, _ := lookup(c.schema, keys)
	if msg := typeProblem(n, v); msg != "" {
		return fmt.Errorf("set %s: %s: %w", path, msg, errs.ErrInvalidArgument)
	}
	return SetIn(c.Raw, keys, v)
}

// SetString is Set for a value typed on a command line: it is converted to
// the field's type (true/false, numbers, JSON5 for arrays and objects).
func (c *Config) SetString(path, s string) error {
	keys, err := c.checkPath(path, true)
	if err != nil {
		return err
	}
	if len(s) > MaxValueBytes {
		return &LimitError{Where: "config set " + path, Msg: fmt.Sprintf("value is %d bytes; the limit is %s", len(s), sizeName(MaxValueBytes)),
			Fix: "make it smaller"}
	}
	n, _ := lookup(c.schema, keys)
	var v any = s
	switch n.kind {
	case kBool:
		b, perr := strconv.ParseBool(s)
		if perr != nil {
			return fmt.Errorf("set %s: %q is not a boolean (use true or false): %w", path, s, errs.ErrInvalidArgument)
		}
		v = b
	case kNumber, kInt:
		f, perr := strconv.ParseFloat(s, 64)
		if perr != nil {
			return fmt.Errorf("set %s: %q is not a number: %w", path, s, errs.ErrInvalidArgument)
		}
		v = f
	case kStringOrNum, kScalar:
		if f, perr := strconv.ParseFloat(s, 64); perr == nil {
			v = f
		}
	case kStringOrBool:
		if b, perr := strconv.ParseBool(s); perr == nil {
			v = b
		}
	case kList, kObject, kMap, kAny:
		t := strings.TrimSpace(s)
		free := n.kind == kAny || n.loose
		if !free || strings.HasPrefix(t, "{") || strings.HasPrefix(t, "[") {
			// Bound the text before json5 sees it: depth here is what is left
			// of the file's limit below this path.
			if err := CheckText([]byte(s), Text{Where: "config set " + path, Noun: "value", MaxBytes: MaxValueBytes, MaxDepth: MaxDepth - len(keys), Below: path}); err != nil {
				return err
			}
			var parsed any
			if perr := json5.Unmarshal([]byte(s), &parsed); perr != nil {
				if free {
					break
				}
				return fmt.Errorf("set %s: value is not JSON5 %s: %v: %w", path, n.kind, perr, errs.ErrInvalidArgument)
			}
			v = parsed
		}
	}
	return c.Set(path, v)
}

// Unset removes the value at a dotted path.
func (c *Config) Unset(path string) error {
	keys, err := c.checkPath(path, false)
	if err != nil {
		return err
	}
	parent, ok := GetIn(c.Raw, keys[:len(keys)-1])
	m, isMap := parent.(map[string]any)
	if !ok || !isMap {
		return fmt.Errorf("unset %s: not set: %w", path, errs.ErrNotFound)
	}
	if _, ok := m[keys[len(keys)-1]]; !ok {
		return fmt.Errorf("unset %s: not set: %w", path, errs.ErrNotFound)
	}
	delete(m, keys[len(keys)-1])
	return nil
}

// checkPath splits path and checks it against the schema. For reads, a key
// that is present in the file is accepted even if unknown (upstream keys).
func (c *Config) checkPath(path string, forWrite bool) ([]string, error) {
	keys := splitPath(path)
	for _, k := range keys {
		if k == "" {
			return nil, fmt.Errorf("config path %q: empty segment (use dots between keys, e.g. gateway.auth.token): %w", path, errs.ErrInvalidArgument)
		}
	}
	if forWrite && len(keys) >= MaxDepth {
		return nil, &LimitError{Where: "config path " + path, Msg: fmt.Sprintf("path has %d segments; the limit is %d", len(keys), MaxDepth-1),
			Fix: "use a shorter path"}
	}
	n, bad := lookup(c.schema, keys)
	if bad < 0 {
		return keys, nil
	}
	if !forWrite {
		if _, ok := GetIn(c.Raw, keys); ok {
			return keys, nil
		}
	}
	parent, _ := lookup(c.schema, keys[:bad])
	_ = n
	msg := fmt.Sprintf("unknown config path %s", path)
	if parent != nil && parent.kind == kObject {
		if s := closest(keys[bad], fieldNames(parent)); s != "" {
			msg += "; did you mean " + joinPath(strings.Join(keys[:bad], "."), s) + "?"
		} else {
			msg += fmt.Sprintf("; %s has keys: %s", orTop(strings.Join(keys[:bad], ".")), strings.Join(fieldNames(parent), ", "))
		}
	} else if parent != nil {
		msg += fmt.Sprintf("; %s is %s", strings.Join(keys[:bad], "."), parent.kind)
	}
	return nil, fmt.Errorf("%s: %w", msg, errs.ErrInvalidArgument)
}

func orTop(p string) string {
	if p == "" {
		return "the top level"
	}
	return p
}

// typeProblem returns "" when v fits n, else what is wrong.
func typeProblem(n *node, v any) string {
	want := n.kind.String()
	got := typeName(v)
	bad := func() string { return fmt.Sprintf("is %s, want %s", article(got), want) }
	switch n.kind {
	case kAny:
		return ""
	case kObject, kMap:
		if _, ok := v.(map[string]any); !ok && !n.loose {
			return bad()
		}
	case kList:
		if _, ok := v.([]any); !ok {
			return bad()
		}
	case kString:
		s, ok := v.(string)
		if !ok {
			return bad()
		}
		if len(n.enum) > 0 && !contains(n.enum, s) && !IsReference(s) {
			return fmt.Sprintf("%q is not one of %s", s, quoteList(n.enum))
		}
	case kBool:
		if _, ok := v.(bool); !ok {
			return bad()
		}
	case kNumber:
		if _, ok := v.(float64); !ok {
			return bad()
		}
	case kInt:
		f, ok := v.(float64)
		if !ok || f != math.Trunc(f) {
			return bad()
		}
	case kScalar, kStringOrNum:
		switch v.(type) {
		case string, float64:
		default:
			return bad()
		}
	case kStringOrBool:
		switch v.(type) {
		case string, bool:
		default:
			return bad()
		}
	case kSecret:
		switch t := v.(type) {
		case string:
		case map[string]any:
			if _, err := envelope.FromMap(t); err != nil {
				return err.Error()
			}
		default:
			return bad()
		}
	}
	return ""
}

func article(t string) string {
	switch t {
	case "null":
		return "null"
	case "array", "object":
		return "an " + t
	}
	return "a " + t
}

// GetIn walks a tree by keys (array elements by index).
func GetIn(tree map[string]any, keys []string) (any, bool) {
	var cur any = tree
	for _, k := range keys {
		switch t := cur.(type) {
		case map[string]any:
			v, ok := t[k]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(t) {
				return nil, false
			}
			cur = t[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// SetIn stores v in tree at keys, creating parent objects; an existing
// non-object parent is an error. Array elements are addressed by index.
func SetIn(tree map[string]any, keys []string, v any) error {
	if len(keys) == 0 {
		return fmt.Errorf("empty path: %w", errs.ErrInvalidArgument)
	}
	var cur any = tree
	for i, k := range keys[:len(keys)-1] {
		switch t := cur.(type) {
		case map[string]any:
			next, ok := t[k]
			if !ok || next == nil {
				next = map[string]any{}
				t[k] = next
			}
			cur = next
		case []any:
			idx, err := strconv.Atoi(k)
			if err != nil || idx < 0 || idx >= len(t) {
				return fmt.Errorf("%s: no element %s: %w", strings.Join(keys[:i], "."), k, errs.ErrInvalidArgument)
			}
			cur = t[idx]
		default:
			return fmt.Errorf("%s is %s, not an object: %w", strings.Join(keys[:i+1], "."), article(typeName(t)), errs.ErrInvalidArgument)
		}
	}
	last := keys[len(keys)-1]
	switch t := cur.(type) {
	case map[string]any:
		t[last] = v
	case []any:
		idx, err := strconv.Atoi(last)
		if err != nil || idx < 0 || idx >= len(t) {
			return fmt.Errorf("%s: no element %s: %w", strings.Join(keys[:len(keys)-1], "."), last, errs.ErrInvalidArgument)
		}
		t[idx] = v
	default:
		return fmt.Errorf("%s is %s, not an object: %w", strings.Join(keys[:len(keys)-1], "."), article(typeName(t)), errs.ErrInvalidArgument)
	}
	return nil
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case bool:
		return "boolean"
	case float64:
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func joinPath(p, k string) string {
	if p == "" {
		return k
	}
	return p + "." + k
}

func sortedKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func quoteList(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

// Clone deep-copies a tree.
func Clone(tree map[string]any) map[string]any {
	c, _ := cloneValue(tree).(map[string]any)
	return c
}

func cloneValue(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[k] = cloneValue(e)
		}
		return m
	case []any:
		a := make([]any, len(t))
		for i, e := range t {
			a[i] = cloneValue(e)
		}
		return a
	}
	return v
}

// StateDirOf returns the directory of a config path (the state dir when the
// config is in its default place).
func StateDirOf(configPath string) string { return filepath.Dir(configPath) }
