package auth

import (
	"fmt"
	"unicode/utf8"
)

// DescribeToken reports a token's strength without revealing it.
func DescribeToken(tok string) string {
	if tok == "" {
		return "missing"
	}
	distinct := map[rune]struct{}{}
	for _, r := range tok {
		distinct[r] = struct{}{}
	}
	verdict := "ok"
	if CheckToken(tok) != nil {
		verdict = "weak"
	}
	return fmt.Sprintf("%s: %d characters, %d distinct (rule: >= %d and >= %d)", verdict, utf8.RuneCountInString(tok), len(distinct), MinTokenLength, MinTokenDistinct)
}
