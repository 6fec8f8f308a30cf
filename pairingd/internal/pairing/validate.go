package pairing

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/moltbot/moltbot-secure/services/errs"
	"github.com/moltbot/moltbot-secure/services/textsafe"
)

// Alphabet is the code alphabet: no 0/O/1/I, so a code read aloud or retyped
// from a phone screen survives. 32 symbols, so a random byte & 31 is unbiased.
const Alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"

// CodeLength is the number of characters of a pairing code (32^8 ~ 1.1e12).
const CodeLength = 8

// Input limits. Meta is shown to the operator in `pairing list`; it is a
// label, not a payload.
const (
	MaxChannelLen   = 32
	MaxSenderIDLen  = 256
	MaxMetaEntries  = 16
	MaxMetaKeyLen   = 64
	MaxMetaValueLen = 256
	MaxMetaBytes    = 2048
)

// ValidateChannel checks a channel name: [a-z0-9_-]{1,32}. The name becomes a
// bucket key and, for imports, part of a file name, so nothing else is allowed.
func ValidateChannel(name string) error {
	if name == "" {
		return fmt.Errorf("channel: empty; give a channel name such as \"telegram\": %w", errs.ErrInvalidArgument)
	}
	if len(name) > MaxChannelLen {
		return fmt.Errorf("channel: %d characters, the limit is %d: %w", len(name), MaxChannelLen, errs.ErrInvalidArgument)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' {
			continue
		}
		return fmt.Errorf("channel %q: only lowercase letters, digits, '_' and '-' are allowed: %w", name, errs.ErrInvalidArgument)
	}
	return nil
}

// NormalizeCode trims and upper-cases a code and checks its shape, so
// "abcd efgh"-style typos are rejected before they count as a guess.
func NormalizeCode(code string) (string, error) {
	// Check the bytes as typed and upper-case ASCII only afterwards:
	// strings.ToUpper maps lookalikes such as U+017F "ſ" to "S", which would
	// turn a non-code into a valid guess.
	c := strings.TrimSpace(code)
	if c == "" {
		return "", fmt.Errorf("code: empty; copy the %d-character code from `moltbot pairing list`: %w", CodeLength, errs.ErrInvalidArgument)
	}
	if len(c) != CodeLength {
		return "", fmt.Errorf("code: must be %d characters, got %d: %w", CodeLength, utf8.RuneCountInString(c), errs.ErrInvalidArgument)
	}
	up := []byte(c)
	for i, b := range up {
		if b >= 'a' && b <= 'z' {
			up[i] = b - 'a' + 'A'
		}
		if strings.IndexByte(Alphabet, up[i]) < 0 {
			return "", fmt.Errorf("code: character %d is not in the code alphabet %s: %w", i+1, Alphabet, errs.ErrInvalidArgument)
		}
	}
	return string(up), nil
}

// ValidateSenderID checks a sender id: non-empty, printable UTF-8, bounded.
func ValidateSenderID(id string) error {
	if strings.TrimSpace(id) == "" {
		return fmt.Errorf("sender_id: empty: %w", errs.ErrInvalidArgument)
	}
	if len(id) > MaxSenderIDLen {
		return fmt.Errorf("sender_id: %d bytes, the limit is %d: %w", len(id), MaxSenderIDLen, errs.ErrInvalidArgument)
	}
	// An id keys the allowlist: refused, never altered (textsafe).
	if err := textsafe.CheckID("sender_id", id); err != nil {
		return err
	}
	return nil
}

// ValidateMeta bounds the metadata attached to a request.
func ValidateMeta(meta map[string]string) error {
	if len(meta) > MaxMetaEntries {
		return fmt.Errorf("meta: %d entries, the limit is %d: %w", len(meta), MaxMetaEntries, errs.ErrInvalidArgument)
	}
	total := 0
	for k, v := range meta {
		if k == "" || len(k) > MaxMetaKeyLen {
			return fmt.Errorf("meta: key %.64q must be 1-%d bytes: %w", k, MaxMetaKeyLen, errs.ErrInvalidArgument)
		}
		if len(v) > MaxMetaValueLen {
			return fmt.Errorf("meta[%q]: %d bytes, the limit is %d: %w", k, len(v), MaxMetaValueLen, errs.ErrInvalidArgument)
		}
		if err := printable(k); err != nil {
			return fmt.Errorf("meta: key %.64q: %v: %w", k, err, errs.ErrInvalidArgument)
		}
		if err := printable(v); err != nil {
			return fmt.Errorf("meta[%q]: %v: %w", k, err, errs.ErrInvalidArgument)
		}
		total += len(k) + len(v)
	}
	if total > MaxMetaBytes {
		return fmt.Errorf("meta: %d bytes in total, the limit is %d: %w", total, MaxMetaBytes, errs.ErrInvalidArgument)
	}
	return nil
}

// printable refuses invalid UTF-8, control and format (bidi) characters,
// which would let a stranger's display name rewrite the operator's terminal
// or reorder `pairing list`. The gateway neutralises names before they get
// here; pairingd still refuses, as it may be called by others.
func printable(s string) error {
	if textsafe.Safe(s) {
		return nil
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("not valid UTF-8")
	}
	return fmt.Errorf("contains a control or format character")
}
