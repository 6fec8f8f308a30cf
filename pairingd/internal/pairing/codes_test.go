package pairing

import (
	"context"
	"math/rand"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/pairingd/internal/store"
	"github.com/moltbot/moltbot-secure/services/ctcheck"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// Two freshly created services (each on its own new store, default
// randomness) hand out different codes: a seeded or constant source would
// give both the same sequence.
func TestFreshServicesDrawDifferentCodes(t *testing.T) {
	ctx := context.Background()
	var seqs [2][]string
	for i := range seqs {
		s, _, _ := newService(t, nil)
		for _, sender := range []string{"1", "2", "3"} {
			r, err := s.Request(ctx, "telegram", sender, nil)
			require.NoError(t, err)
			seqs[i] = append(seqs[i], r.Code)
		}
	}
	for j := range seqs[0] {
		require.NotEqual(t, seqs[0][j], seqs[1][j], "code %d is the same from two fresh services (%v, %v)", j, seqs[0], seqs[1])
	}
}

// chiSquare is Pearson's statistic of letter counts against the uniform
// distribution over Alphabet, and the letters never seen.
func chiSquare(codes []string) (float64, string) {
	counts := map[byte]int{}
	n := 0
	for _, c := range codes {
		for i := range len(c) {
			counts[c[i]]++
			n++
		}
	}
	want := float64(n) / float64(len(Alphabet))
	var chi float64
	var unseen strings.Builder
	for i := range len(Alphabet) {
		d := float64(counts[Alphabet[i]]) - want
		chi += d * d / want
		if counts[Alphabet[i]] == 0 {
			unseen.WriteByte(Alphabet[i])
		}
	}
	return chi, unseen.String()
}

// chiBound is the chi-square value with 31 degrees of freedom that a fair
// source exceeds with probability about 1e-6 (Wilson-Hilferty).
const chiBound = 84.0

// Every letter of the 32-letter alphabet is used, and uniformly: the
// chi-square statistic over 32,000 letters stays under a 1e-6 bound. A cut
// alphabet (2 letters) or a biased draw fails.
func TestCodeLetterDistribution(t *testing.T) {
	s, _, _ := newService(t, nil)
	codes := make([]string, 4000)
	perPos := make([]map[byte]bool, CodeLength)
	for i := range perPos {
		perPos[i] = map[byte]bool{}
	}
	for i := range codes {
		c, err := s.newCode(nil)
		require.NoError(t, err)
		require.Len(t, c, CodeLength)
		codes[i] = c
		for p := range len(c) {
			perPos[p][c[p]] = true
		}
	}
	chi, unseen := chiSquare(codes)
	require.Empty(t, unseen, "letters never used")
	require.Less(t, chi, chiBound, "letter counts are not uniform (chi-square %.1f)", chi)
	for p, seen := range perPos {
		require.Len(t, seen, len(Alphabet), "position %d does not use every letter", p)
	}
}

// The statistic itself tells a 2-letter alphabet from a fair one, so the
// test above can fail.
func TestChiSquareCatchesACutAlphabet(t *testing.T) {
	r := rand.New(rand.NewSource(7))
	cut := make([]string, 1000)
	for i := range cut {
		b := make([]byte, CodeLength)
		for j := range b {
			b[j] = Alphabet[r.Intn(2)]
		}
		cut[i] = string(b)
	}
	chi, unseen := chiSquare(cut)
	require.Len(t, unseen, 30)
	require.Greater(t, chi, chiBound)
}

// Approve matches the whole code: a code that shares the first characters
// of a pending one, or differs only in the last, is refused.
func TestApproveNeedsTheWholeCode(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newService(t, nil)
	r, err := s.Request(ctx, "telegram", "42", nil)
	require.NoError(t, err)
	other := func(b byte) byte {
		if b == Alphabet[0] {
			return Alphabet[1]
		}
		return Alphabet[0]
	}
	for pos := CodeLength / 2; pos < CodeLength; pos++ {
		wrong := []byte(r.Code)
		wrong[pos] = other(wrong[pos])
		_, err := s.Approve(ctx, "cli", "telegram", string(wrong))
		require.ErrorIs(t, err, errs.ErrNotFound, "code differing at position %d was accepted", pos)
	}
	res, err := s.Approve(ctx, "cli", "telegram", r.Code)
	require.NoError(t, err)
	require.Equal(t, "42", res.SenderID)
}

// match is constant time over the whole code and safe on any length.
func TestMatchConstantTimeAndLengthSafe(t *testing.T) {
	require.NoError(t, ctcheck.Func("pairing.go", "match"))
	pending := pendingWithCodes("ABCD2345", "WXYZ6789")
	for _, code := range []string{"", "A", "ABCD", "ABCD234", "ABCD23456", "ABCD2346"} {
		require.Equal(t, -1, match(pending, code), "%q", code)
	}
	require.Equal(t, 1, match(pending, "WXYZ6789"))
}

func pendingWithCodes(codes ...string) []store.Pending {
	out := make([]store.Pending, len(codes))
	for i, c := range codes {
		out[i] = store.Pending{Channel: "telegram", SenderID: c, Code: c}
	}
	return out
}
