package pairing

import (
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/moltbot/moltbot-secure/services/errs"
)

// FuzzNormalizeCode feeds arbitrary text as an approve/reject code: it must
// never panic, every refusal is InvalidArgument, and an accepted code is
// exactly CodeLength symbols of Alphabet, stable under a second pass, and
// spelled by the caller in ASCII (a lookalike must not normalise into a
// valid guess).
func FuzzNormalizeCode(f *testing.F) {
	for _, s := range []string{"ABCDEFGH", " abcd2345 ", "ABCD EFGH", "", "ABCDEFG0", "abcdefghi", "ſBCDEFGH", "\u00a0ABCDEFGH\u00a0", "ABCDEFG\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		c, err := NormalizeCode(in)
		if err != nil {
			if !errors.Is(err, errs.ErrInvalidArgument) {
				t.Fatalf("NormalizeCode(%q): error %v is not InvalidArgument", in, err)
			}
			if c != "" {
				t.Fatalf("NormalizeCode(%q) returned %q with an error", in, c)
			}
			return
		}
		if len(c) != CodeLength {
			t.Fatalf("NormalizeCode(%q) = %q: length %d, want %d", in, c, len(c), CodeLength)
		}
		for i := 0; i < len(c); i++ {
			if strings.IndexByte(Alphabet, c[i]) < 0 {
				t.Fatalf("NormalizeCode(%q) = %q: byte %d not in alphabet", in, c, i)
			}
		}
		again, err := NormalizeCode(c)
		if err != nil || again != c {
			t.Fatalf("NormalizeCode not idempotent on %q: %q, %v", c, again, err)
		}
		trimmed := strings.TrimSpace(in)
		if !strings.EqualFold(trimmed, c) || len(trimmed) != len(c) {
			t.Fatalf("NormalizeCode(%q) = %q: accepted input is not the code in ASCII up to case and surrounding space", in, c)
		}
	})
}

// FuzzRequestValidation feeds arbitrary pairing request fields (what a
// channel adapter forwards from a stranger) through the validators the
// Request handler runs: no panic, refusals are InvalidArgument, and what is
// accepted is safe to print in `pairing list` and to use as a bucket key.
func FuzzRequestValidation(f *testing.F) {
	f.Add("telegram", "123456789", "username", "alice")
	f.Add("", " ", "", "")
	f.Add("Tele gram", "id\x1b[2J", "k\x00", "v\u200b")
	f.Add("a-b_c", strings.Repeat("x", 257), strings.Repeat("k", 65), "\xff\xfe")
	f.Add("whatsapp", "+15551234567", "name", "Bob \u202eevil")
	f.Fuzz(func(t *testing.T, channel, sender, key, value string) {
		check := func(what string, err error) bool {
			if err != nil && !errors.Is(err, errs.ErrInvalidArgument) {
				t.Fatalf("%s: error %v is not InvalidArgument", what, err)
			}
			return err == nil
		}
		if check("channel", ValidateChannel(channel)) {
			if channel == "" || len(channel) > MaxChannelLen {
				t.Fatalf("channel %q accepted: bad length", channel)
			}
			for _, r := range channel {
				if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
					t.Fatalf("channel %q accepted with %q", channel, r)
				}
			}
		}
		if check("sender", ValidateSenderID(sender)) {
			mustPrintable(t, "sender", sender)
			if strings.TrimSpace(sender) == "" || len(sender) > MaxSenderIDLen {
				t.Fatalf("sender %q accepted: bad length", sender)
			}
		}
		meta := map[string]string{key: value, "n": sender}
		if check("meta", ValidateMeta(meta)) {
			total := 0
			for k, v := range meta {
				mustPrintable(t, "meta key", k)
				mustPrintable(t, "meta value", v)
				if k == "" || len(k) > MaxMetaKeyLen || len(v) > MaxMetaValueLen {
					t.Fatalf("meta %q=%q accepted: bad length", k, v)
				}
				total += len(k) + len(v)
			}
			if total > MaxMetaBytes {
				t.Fatalf("meta of %d bytes accepted", total)
			}
		}
	})
}

func mustPrintable(t *testing.T, what, s string) {
	t.Helper()
	if !utf8.ValidString(s) {
		t.Fatalf("%s %q accepted: invalid UTF-8", what, s)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			t.Fatalf("%s %q accepted with control character %U", what, s, r)
		}
	}
}
