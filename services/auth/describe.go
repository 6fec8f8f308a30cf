package auth

import (
	"fmt"
)

// DescribeToken reports a token's strength without revealing it.
func DescribeToken(tok string) string {
	if tok == "" {
		return "missing"
	}
	n, distinct := Counts(tok)
	verdict := "ok"
	if CheckToken(tok) != nil {
		verdict = "weak"
	}
	return fmt.Sprintf("%s: %d characters, %d distinct (rule: >= %d and >= %d)", verdict, n, distinct, MinTokenLength, MinTokenDistinct)
}
