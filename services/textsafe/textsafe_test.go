package textsafe

import (
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/services/errs"
)

var hostile = []struct {
	name, in string
}{
	{"RLO override", "alice\u202Eecila"},
	{"LRE embedding", "\u202Abob"},
	{"PDF", "bob\u202C"},
	{"RLI isolate", "\u2067mallory\u2069"},
	{"FSI", "\u2068x"},
	{"newline", "alice\nINFO approved"},
	{"escape", "a\x1b[2Jb"},
	{"C1 CSI", "a\u009bb"},
	{"NUL", "a\x00b"},
	{"zero-width space", "ali\u200Bce"},
	{"BOM", "\uFEFFalice"},
	{"line separator", "a\u2028b"},
	{"invalid UTF-8", "a\xffb"},
	{"noncharacter", "a\uFFFEb"},
}

func TestCheckIDRefuses(t *testing.T) {
	for _, tt := range hostile {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckID("sender_id", tt.in)
			require.ErrorIs(t, err, errs.ErrInvalidArgument)
			require.ErrorContains(t, err, "sender_id: ")
			require.False(t, Safe(tt.in))
		})
	}
	// Joiners are refused in ids too: an id has no reason to carry them.
	require.Error(t, CheckID("id", "a\u200Db"))
}

func TestCheckIDAccepts(t *testing.T) {
	for _, s := range []string{"123456789", "alice", "José", "用户", "a b", "-100123", "😀"} {
		require.NoError(t, CheckID("sender_id", s), s)
	}
}

func TestNeutralize(t *testing.T) {
	for _, tt := range hostile {
		t.Run(tt.name, func(t *testing.T) {
			out := Neutralize(tt.in, 0)
			require.True(t, utf8.ValidString(out))
			for _, r := range out {
				require.False(t, forbidden(r, true) && r != Replacement, "%U left in %q", r, out)
			}
			require.Contains(t, out, string(Replacement), "the operator sees something was removed")
		})
	}
	tests := []struct {
		name, in string
		max      int
		want     string
	}{
		{"plain", "  Alice Smith ", 0, "Alice Smith"},
		{"emoji with joiner kept", "👩\u200D💻 dev", 0, "👩\u200D💻 dev"},
		{"cut on a rune boundary", "ééé", 3, "é"},
		{"override replaced", "a\u202Eb", 0, "a\uFFFDb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, Neutralize(tt.in, tt.max))
		})
	}
}

func FuzzNeutralize(f *testing.F) {
	for _, h := range hostile {
		f.Add(h.in, 16)
	}
	f.Fuzz(func(t *testing.T, s string, max int) {
		out := Neutralize(s, max)
		if !utf8.ValidString(out) {
			t.Fatalf("invalid UTF-8 out of %q", s)
		}
		if max > 0 && len(out) > max {
			t.Fatalf("%d bytes > max %d", len(out), max)
		}
		for _, r := range out {
			if r != Replacement && forbidden(r, true) {
				t.Fatalf("%U survived in %q", r, out)
			}
		}
	})
}
