package config

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/moltbot/moltbot-secure/services/errs"
	"github.com/titanous/json5"
)

// Bounds on every JSON or JSON5 text a client or a file feeds us. The
// decoders behind them (json5, encoding/json) recurse per nesting level, and
// our own tree walks build a path string per level, so an unbounded depth
// costs memory quadratic in it: a 300 KB value 50,000 deep once took a
// gateway past 3 GB. CheckText enforces these in one linear pass before any
// decoder runs.
const (
	// MaxDepth is the deepest nesting of objects and arrays, counted from the
	// top of a whole file (a value set at a path has that many fewer levels).
	MaxDepth = 64
	// MaxFileBytes bounds a config file (and any other JSON state file).
	MaxFileBytes = 4 << 20
	// MaxValueBytes bounds one value given to `config set`.
	MaxValueBytes = 1 << 20
)

// LimitError is input refused by CheckText: over a bound, invalid UTF-8 or a
// duplicate key. Its text names where, the limit and the fix; it never quotes
// the input beyond a key name.
type LimitError struct {
	Where string // "config set agents.x", "/state/moltbot.json"
	Line  int    // 0 when unknown or irrelevant
	Msg   string // "value nests 50000 deep; the limit is 64"
	Fix   string
}

func (e *LimitError) Error() string {
	s := e.Where
	if e.Line > 0 {
		s += ":" + strconv.Itoa(e.Line)
	}
	s += ": " + e.Msg
	if e.Fix != "" {
		s += " (" + e.Fix + ")"
	}
	return s
}

// Unwrap makes a LimitError an errs.ErrInvalidArgument.
func (e *LimitError) Unwrap() error { return errs.ErrInvalidArgument }

// Text describes one input for CheckText.
type Text struct {
	Where    string // names the input in errors: a file path or "config set PATH"
	Noun     string // "file" or "value"
	MaxBytes int    // 0: MaxFileBytes
	MaxDepth int    // 0: MaxDepth
	// Below names the path when MaxDepth is what is left of the file's
	// limit under it, so the message explains the smaller number.
	Below string
}

// CheckText is the one bounded entry in front of every JSON/JSON5 decoder of
// outside input: size, UTF-8, nesting depth and duplicate object keys, in a
// single linear pass whose memory is bounded by MaxDepth (frames deeper than
// the limit are only counted). It does not check syntax: the decoder that
// runs next does, and reports it with its own position.
func CheckText(data []byte, t Text) error {
	if t.MaxBytes <= 0 {
		t.MaxBytes = MaxFileBytes
	}
	if t.MaxDepth <= 0 {
		t.MaxDepth = MaxDepth
	}
	if t.Noun == "" {
		t.Noun = "input"
	}
	if len(data) > t.MaxBytes {
		return &LimitError{Where: t.Where, Msg: fmt.Sprintf("%s is %d bytes; the limit is %s", t.Noun, len(data), sizeName(t.MaxBytes)),
			Fix: "make it smaller"}
	}
	if !utf8.Valid(data) {
		off := 0
		for off < len(data) {
			r, n := utf8.DecodeRune(data[off:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			off += n
		}
		line, col := lineCol(data, off)
		if t.Noun != "file" {
			line = 0
		}
		return &LimitError{Where: t.Where, Line: line, Msg: fmt.Sprintf("%s is not valid UTF-8 (column %d)", t.Noun, col),
			Fix: "save it as UTF-8"}
	}
	return scanStructure(data, t)
}

type scanFrame struct {
	obj, wantKey bool
	keys         map[string]struct{}
}

func scanStructure(src []byte, t Text) error {
	at := func(line int) int { // a line number helps in a file, not in a one-line value
		if t.Noun == "file" {
			return line
		}
		return 0
	}
	var stack []scanFrame // at most t.MaxDepth frames
	depth, deepest, deepLine := 0, 0, 0
	line, i := 1, 0
	top := func() *scanFrame {
		if depth > 0 && len(stack) == depth {
			return &stack[depth-1]
		}
		return nil
	}
	key := func(k string, kline int) error {
		f := top()
		if f == nil || !f.obj || !f.wantKey {
			return nil
		}
		f.wantKey = false
		if f.keys == nil {
			f.keys = map[string]struct{}{}
		}
		if _, dup := f.keys[k]; dup {
			return &LimitError{Where: t.Where, Line: at(kline), Msg: fmt.Sprintf("key %q appears twice in the same object", k),
				Fix: "keep one of them; the decoder would silently drop the other"}
		}
		f.keys[k] = struct{}{}
		return nil
	}
	for i < len(src) {
		if next, ok := skipTrivia(src, i, &line); ok {
			i = next
			continue
		}
		c := src[i]
		switch {
		case c == '{' || c == '[':
			if f := top(); f != nil && f.obj {
				f.wantKey = false
			}
			depth++
			if depth > deepest {
				deepest, deepLine = depth, line
			}
			if depth <= t.MaxDepth {
				stack = append(stack, scanFrame{obj: c == '{', wantKey: c == '{'})
			}
			i++
		case c == '}' || c == ']':
			if depth > 0 {
				if len(stack) == depth {
					stack = stack[:depth-1]
				}
				depth--
			}
			i++
		case c == ',':
			if f := top(); f != nil && f.obj {
				f.wantKey = true
			}
			i++
		case c == '"' || c == '\'':
			start, startLine, esc := i, line, false
			i++
			for i < len(src) && src[i] != c {
				if src[i] == '\\' && i+1 < len(src) {
					esc = true
					i++
				}
				if src[i] == '\n' {
					line++
				}
				i++
			}
			i = min(i+1, len(src))
			if f := top(); f != nil && f.obj && f.wantKey {
				tok := src[start:i]
				k := string(tok[1 : len(tok)-min(1, len(tok)-1)])
				if esc {
					// Only keys with escapes pay for a decode; it is bounded
					// by the key's length.
					var dk string
					if json5.Unmarshal(tok, &dk) == nil {
						k = dk
					}
				}
				if err := key(k, startLine); err != nil {
					return err
				}
			}
		default:
			r, size := utf8.DecodeRune(src[i:])
			if unicode.IsSpace(r) || r == '\uFEFF' || c == ':' {
				i += size
				continue
			}
			start := i
			for i < len(src) && strings.IndexByte(",:{}[]\"'/ \t\r\n", src[i]) < 0 {
				i++
			}
			if i == start {
				i++
				continue
			}
			if err := key(string(src[start:i]), line); err != nil {
				return err
			}
		}
	}
	if deepest > t.MaxDepth {
		msg := fmt.Sprintf("%s nests %d deep; the limit is %d", t.Noun, deepest, t.MaxDepth)
		if t.Below != "" {
			msg += fmt.Sprintf(" below %s, %d for the whole file", t.Below, MaxDepth)
		}
		return &LimitError{Where: t.Where, Line: at(deepLine), Msg: msg, Fix: "flatten the structure"}
	}
	return nil
}

// ReadBounded reads at most max bytes of r and fails, rather than truncate,
// when there is more: it reads one byte past max to know.
func ReadBounded(r io.Reader, t Text) ([]byte, error) {
	if t.MaxBytes <= 0 {
		t.MaxBytes = MaxFileBytes
	}
	if t.Noun == "" {
		t.Noun = "input"
	}
	b, err := io.ReadAll(io.LimitReader(r, int64(t.MaxBytes)+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", t.Where, err)
	}
	if len(b) > t.MaxBytes {
		return nil, &LimitError{Where: t.Where, Msg: fmt.Sprintf("%s is over %s; the limit is %s", t.Noun, sizeName(t.MaxBytes), sizeName(t.MaxBytes)),
			Fix: "make it smaller"}
	}
	return b, nil
}

// DecodeJSON is CheckText followed by encoding/json, for the strict-JSON
// state and import files (sessions index, pairing import, sealed backups).
func DecodeJSON(data []byte, t Text, v any) error {
	if err := CheckText(data, t); err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %v: %w", t.Where, err, errs.ErrInvalidArgument)
	}
	return nil
}

func sizeName(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// checkValueBounds bounds a value about to be stored at a path with nkeys
// segments, so the file written next still loads: its depth plus the path's
// must stay within MaxDepth, and a string within MaxValueBytes. The walk
// stops one level past the limit, so a hostile tree costs no more than that.
func checkValueBounds(path string, nkeys int, v any) error {
	where := "config set " + path
	if s, ok := v.(string); ok && len(s) > MaxValueBytes {
		return &LimitError{Where: where, Msg: fmt.Sprintf("value is %d bytes; the limit is %s", len(s), sizeName(MaxValueBytes)), Fix: "make it smaller"}
	}
	limit := MaxDepth - nkeys
	if d := depthUpTo(v, limit+1); d > limit {
		return &LimitError{Where: where, Msg: fmt.Sprintf("value nests more than %d deep; the limit here is %d (%d for the whole file)", limit, limit, MaxDepth),
			Fix: "flatten the structure"}
	}
	return nil
}

// depthUpTo returns the nesting depth of v, or stop once it reaches stop.
func depthUpTo(v any, stop int) int {
	if stop <= 0 {
		return 0
	}
	best := 0
	switch t := v.(type) {
	case map[string]any:
		best = 1
		for _, e := range t {
			best = max(best, 1+depthUpTo(e, stop-1))
			if best >= stop {
				return best
			}
		}
	case []any:
		best = 1
		for _, e := range t {
			best = max(best, 1+depthUpTo(e, stop-1))
			if best >= stop {
				return best
			}
		}
	}
	return best
}
