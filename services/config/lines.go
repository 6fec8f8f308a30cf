package config

import (
	"strconv"
	"unicode"
	"unicode/utf8"

	"github.com/titanous/json5"
)

// indexLines maps each dotted path (array elements by index) to the line of
// its key, or of its value for array elements. src must already be valid
// JSON5; on anything unexpected the index is simply incomplete.
func indexLines(src []byte) map[string]int {
	type frame struct {
		obj     bool
		path    string
		idx     int
		wantKey bool
	}
	lines := map[string]int{}
	var stack []*frame
	line, i := 1, 0
	join := func(p, k string) string {
		if p == "" {
			return k
		}
		return p + "." + k
	}
	// valueStart records the path of a value starting at the current line and
	// returns it.
	valueStart := func() string {
		if len(stack) == 0 {
			return ""
		}
		top := stack[len(stack)-1]
		if top.obj {
			return "" // the key was recorded already; objects' own paths come from their key
		}
		p := join(top.path, strconv.Itoa(top.idx))
		lines[p] = line
		return p
	}
	curKeyPath := map[*frame]string{}
	for i < len(src) {
		if next, ok := skipTrivia(src, i, &line); ok {
			i = next
			continue
		}
		c := src[i]
		switch {
		case c == '{' || c == '[':
			p := ""
			if len(stack) > 0 {
				top := stack[len(stack)-1]
				if top.obj {
					p = curKeyPath[top]
				} else {
					p = valueStart()
				}
			}
			stack = append(stack, &frame{obj: c == '{', path: p, wantKey: c == '{'})
			i++
		case c == '}' || c == ']':
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			i++
		case c == ',':
			if len(stack) > 0 {
				top := stack[len(stack)-1]
				if top.obj {
					top.wantKey = true
				} else {
					top.idx++
				}
			}
			i++
		case c == ':':
			i++
		case c == '"' || c == '\'':
			start, startLine := i, line
			i++
			for i < len(src) && src[i] != c {
				if src[i] == '\\' && i+1 < len(src) {
					i++
				}
				if src[i] == '\n' {
					line++
				}
				i++
			}
			i++
			if i > len(src) {
				i = len(src)
			}
			tok := src[start:i]
			if len(stack) > 0 && stack[len(stack)-1].obj && stack[len(stack)-1].wantKey {
				top := stack[len(stack)-1]
				var key string
				if json5.Unmarshal(tok, &key) == nil {
					p := join(top.path, key)
					curKeyPath[top] = p
					lines[p] = startLine
				}
				top.wantKey = false
			} else {
				valueStart()
			}
		default:
			r, size := utf8.DecodeRune(src[i:])
			if unicode.IsSpace(r) || r == '\uFEFF' {
				i += size
				continue
			}
			start := i
			for i < len(src) {
				b := src[i]
				if b == ',' || b == ':' || b == '}' || b == ']' || b == '{' || b == '[' || b == '"' || b == '\'' || b == '/' || b == ' ' || b == '\t' || b == '\r' || b == '\n' {
					break
				}
				i++
			}
			if i == start { // lone '/' or similar: skip one byte to make progress
				i++
				continue
			}
			if len(stack) > 0 && stack[len(stack)-1].obj && stack[len(stack)-1].wantKey {
				top := stack[len(stack)-1]
				p := join(top.path, string(src[start:i]))
				curKeyPath[top] = p
				lines[p] = line
				top.wantKey = false
			} else {
				valueStart()
			}
		}
	}
	return lines
}

// skipTrivia steps over a newline or a JSON5 comment at src[i], counting
// lines, and reports whether there was one. The bounded pre-scan and the
// line finder share it, so both read comments the way the parser does.
func skipTrivia(src []byte, i int, line *int) (int, bool) {
	switch {
	case src[i] == '\n':
		*line++
		return i + 1, true
	case src[i] == '/' && i+1 < len(src) && src[i+1] == '/':
		for i < len(src) && src[i] != '\n' {
			i++
		}
		return i, true
	case src[i] == '/' && i+1 < len(src) && src[i+1] == '*':
		i += 2
		for i < len(src) && !(src[i] == '*' && i+1 < len(src) && src[i+1] == '/') {
			if src[i] == '\n' {
				*line++
			}
			i++
		}
		return i + 2, true
	}
	return i, false
}
