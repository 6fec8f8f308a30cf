package auth

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/moltbot/moltbot-secure/services/errs"
	"github.com/stretchr/testify/require"
)

func TestCheckToken(t *testing.T) {
	tests := []struct {
		name string
		tok  string
		ok   bool
	}{
		{"empty", "", false},
		{"short", "abcdefghijklmnopqrstuvwxyz", false},
		{"long but repetitive", strings.Repeat("ab", 40), false},
		{"19 distinct", strings.Repeat("abcdefghijklmnopqrs", 2), false},
		{"32 characters, 30 distinct", "abcdefghijklmnopqrst012345678901", true},
		{"exactly 32 and exactly 20 distinct", "abcdefghijklmnopqrst" + "abcdefghijkl", true},
		{"31 characters, 20 distinct", "abcdefghijklmnopqrst" + "abcdefghijk", false},
		{"40 characters, 19 distinct", "abcdefghijklmnopqrs" + "abcdefghijklmnopqrsa" + "b", false},
		{"upstream example", "your-32-character-token-here-abcdefgh", false},
		{"generated shape", "Q2x9bT7mLkP4vW1zRs8NdYcH3fJg6aEuKoXi5qBpVnM", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckToken(tc.tok)
			if tc.ok {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.True(t, errors.Is(err, ErrWeakToken))
			require.True(t, errors.Is(err, errs.ErrInvalidArgument))
			require.Contains(t, err.Error(), "at least 32 characters with at least 20 distinct")
			require.Contains(t, err.Error(), TokenFix)
			if tc.tok != "" {
				require.NotContains(t, err.Error(), tc.tok)
			}
		})
	}
}

func TestGenerateTokenAlwaysPasses(t *testing.T) {
	seen := map[string]bool{}
	for range 10000 {
		tok, err := GenerateToken(rand.Reader)
		require.NoError(t, err)
		require.Len(t, tok, GeneratedTokenLength)
		require.NoError(t, CheckToken(tok))
		require.False(t, seen[tok])
		seen[tok] = true
	}
}

func TestGenerateTokenBrokenReader(t *testing.T) {
	_, err := GenerateToken(bytes.NewReader(nil))
	require.ErrorContains(t, err, "read random")
	_, err = GenerateToken(constReader{})
	require.ErrorContains(t, err, "no passing token")
}

type constReader struct{}

func (constReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	return len(p), nil
}

func TestTokenEqual(t *testing.T) {
	require.True(t, TokenEqual("abc", "abc"))
	require.False(t, TokenEqual("abc", "abd"))
	require.False(t, TokenEqual("abc", "abcd"))
	require.True(t, TokenEqual("", ""))
}

func FuzzCheckToken(f *testing.F) {
	f.Add("abcdefghijklmnopqrst012345678901")
	f.Add("short")
	f.Fuzz(func(t *testing.T, tok string) {
		err := CheckToken(tok)
		// The message is a fixed template plus counts: with digits removed
		// it must equal the template of any other weak token.
		if err != nil && noDigits(err.Error()) != noDigits(CheckToken("").Error()) {
			t.Fatalf("error text depends on the token: %q", err)
		}
		if err == nil && len([]rune(tok)) < MinTokenLength {
			t.Fatalf("short token passed")
		}
	})
}

func noDigits(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return -1
		}
		return r
	}, s)
}

// The draw is rejection sampling: bytes 248..255 are skipped (so every
// symbol is equally likely), and the rest map to base62[b%62] in order.
func TestDrawBase62Rejects248Up(t *testing.T) {
	src := make([]byte, 0, 512)
	for i := range 512 {
		src = append(src, byte(i*37+245))
	}
	var want []byte
	for _, b := range src {
		if b < 248 {
			want = append(want, base62[b%62])
		}
	}
	got, err := drawBase62(bytes.NewReader(src), 43)
	require.NoError(t, err)
	require.Equal(t, string(want[:43]), got)
}

// A source that only yields rejected bytes ends in an error, not a hang.
func TestGenerateTokenRejectedOnlySource(t *testing.T) {
	done := make(chan error, 1)
	go func() {
		_, err := GenerateToken(byteReader(0xff))
		done <- err
	}()
	select {
	case err := <-done:
		require.ErrorContains(t, err, "random source")
	case <-time.After(5 * time.Second):
		t.Fatal("GenerateToken hangs on a source of 0xff bytes")
	}
}

type byteReader byte

func (b byteReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}
