// Package textsafe is the one rule for text that comes from a chat network
// and is shown to the operator (CLI, logs, replies): sender ids, chat ids,
// display names. Bidi embeddings, overrides and isolates (U+202A-U+202E,
// U+2066-U+2069) can make `pairing list` show one id while approving
// another, and other control or format characters can rewrite a terminal
// or split a log line.
//
// Refuse or neutralise, per field:
//   - an id is refused (CheckID): it keys allowlists and sessions, so a
//     silently altered id would match, or fail to match, a different person;
//   - a display name is neutralised (Neutralize): it is only shown, and a
//     message from someone with an odd name should still arrive.
package textsafe

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/moltbot/moltbot-secure/services/errs"
)

// Replacement marks where Neutralize removed a character, so the operator
// sees that something was there.
const Replacement = '\uFFFD'

// forbidden reports whether r must not reach a reply, a log or a terminal:
// C0/C1 controls (Cc), format characters (Cf: the bidi controls, zero-width
// spaces, BOM, soft hyphen...), line and paragraph separators, and
// noncharacters/invalid runes. allowJoiners keeps ZWNJ and ZWJ, which
// Indic scripts and emoji sequences need and which cannot reorder text.
func forbidden(r rune, allowJoiners bool) bool {
	if allowJoiners && (r == '\u200C' || r == '\u200D') {
		return false
	}
	return r == utf8.RuneError || unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp) ||
		(r >= 0xFDD0 && r <= 0xFDEF) || r&0xFFFE == 0xFFFE
}

// CheckID refuses an id that is not valid UTF-8 or holds any control or
// format character; field names it in the error (e.g. "sender_id").
func CheckID(field, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s: not valid UTF-8: %w", field, errs.ErrInvalidArgument)
	}
	for i, r := range s {
		if forbidden(r, false) {
			return fmt.Errorf("%s: control or format character %U at byte %d is not allowed in an id (bidi and invisible characters could make it look like another id): %w",
				field, r, i, errs.ErrInvalidArgument)
		}
	}
	return nil
}

// Neutralize returns s with invalid UTF-8 and every control or format
// character replaced by U+FFFD, cut to at most max bytes on a rune
// boundary (max <= 0: no cut), and trimmed.
func Neutralize(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if forbidden(r, true) {
			return Replacement
		}
		return r
	}, strings.ToValidUTF8(s, string(Replacement)))
	if max > 0 && len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return strings.TrimSpace(s)
}

// Safe reports whether s would pass CheckID.
func Safe(s string) bool { return CheckID("", s) == nil }
