package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"

	"github.com/moltbot/moltbot-secure/services/errs"
)

// Gateway token rule (seed phase 1): at least MinTokenLength characters of
// which at least MinTokenDistinct are different, so "aaaa..." or a short
// password does not pass.
const (
	MinTokenLength   = 32
	MinTokenDistinct = 20
	// GeneratedTokenLength is 43 base62 characters: about 256 bits.
	GeneratedTokenLength = 43
	// TokenFix is the command that makes a token that passes.
	TokenFix = "moltbot token generate"
)

// ErrWeakToken marks a token that breaks the rule; it also wraps
// errs.ErrInvalidArgument.
var ErrWeakToken = errors.New("weak gateway token")

const base62 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// CheckToken applies the token rule. The error names the rule and the fix and
// never includes the token itself, since it may reach a log or a client.
func CheckToken(tok string) error {
	n, distinct := Counts(tok)
	if n < MinTokenLength || distinct < MinTokenDistinct {
		return fmt.Errorf("%w: the token has %d characters (%d distinct); the rule is at least %d characters with at least %d distinct; run `%s` for one that passes: %w",
			ErrWeakToken, n, distinct, MinTokenLength, MinTokenDistinct, TokenFix, errs.ErrInvalidArgument)
	}
	return nil
}

// Counts returns the characters (runes) of s and how many of them are
// distinct: the two numbers the token rule (and the password rule) judge.
// Every caller counts with it, so the rule and its messages cannot differ.
func Counts(s string) (chars, distinct int) {
	seen := make(map[rune]struct{}, len(s))
	for _, r := range s {
		chars++
		seen[r] = struct{}{}
	}
	return chars, len(seen)
}

// GenerateToken draws a 43-character base62 token from r (crypto/rand.Reader
// in production) and re-draws until it passes CheckToken, so a caller never
// gets a token the gateway would refuse.
func GenerateToken(r io.Reader) (string, error) {
	for range 100 {
		tok, err := drawBase62(r, GeneratedTokenLength)
		if err != nil {
			return "", err
		}
		if CheckToken(tok) == nil {
			return tok, nil
		}
	}
	// Only a broken reader (e.g. constant bytes) gets here.
	return "", errors.New("generate token: random source produced no passing token in 100 draws")
}

func drawBase62(r io.Reader, n int) (string, error) {
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/2)
	// A fair source fills n symbols in one or two reads; one that keeps
	// yielding only rejected bytes (>= 248) is broken, not unlucky.
	for reads := 0; len(out) < n; reads++ {
		if reads == 64 {
			return "", errors.New("generate token: random source yields only rejected bytes")
		}
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", fmt.Errorf("generate token: read random: %w", err)
		}
		for _, b := range buf {
			// Rejection sampling: 248 = 4*62, so every symbol is equally likely.
			if b < 248 && len(out) < n {
				out = append(out, base62[b%62])
			}
		}
	}
	return string(out), nil
}

// TokenEqual compares two tokens in constant time. Comparing SHA-256 digests
// keeps the time independent of the lengths too.
func TokenEqual(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}
