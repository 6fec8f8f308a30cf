package auth

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/services/ctcheck"
)

// An `==` gives the same answers as crypto/subtle, so only the source can
// show the compares are constant time.
func TestComparesAreConstantTime(t *testing.T) {
	for _, c := range []struct{ file, fn string }{
		{"authn.go", "digestEqual"},
		{"token.go", "TokenEqual"},
	} {
		require.NoError(t, ctcheck.Func(c.file, c.fn))
	}
}

// A compare cut short (say to the first 4 of 32 bytes) accepts a digest that
// differs only later: every byte position must count.
func TestDigestEqualWholeLength(t *testing.T) {
	a := DigestOf("the-right-token-the-right-token-0123456789")
	require.True(t, digestEqual(a, a))
	for i := range len(a) {
		b := a
		b[i] ^= 0x01
		require.False(t, digestEqual(a, b), "digests differing only at byte %d compared equal", i)
	}
	// Through the verifiers: a token whose digest shares a prefix is refused.
	st := NewServiceTokens(map[string]Digest{IDGateway: a})
	_, _, ok := st.Verify(IDGateway, "the-right-token-the-right-token-0123456789")
	require.True(t, ok)
	_, _, ok = st.Verify(IDGateway, "the-right-token-the-right-token-012345678")
	require.False(t, ok)
}

// Tokens of any length compare without a panic and only equal tokens match.
func TestTokenEqualLengths(t *testing.T) {
	long := "0123456789abcdef0123456789abcdef0123456789abcdef"
	for n := 0; n <= len(long); n++ {
		require.False(t, TokenEqual(long, long[:n]) && n != len(long), "prefix of %d matched", n)
		require.False(t, TokenEqual(long[:n]+"x", long), "different token of %d+1 matched", n)
	}
	require.True(t, TokenEqual(long, long))
}
