package seclog

import (
	"bytes"
	"errors"
	"testing"
)

// fuzzKey is fixed so the committed corpus (testdata/fuzz/FuzzVerify)
// holds logs that verify, and mutations start from valid chains.
var fuzzKey = bytes.Repeat([]byte{0x5a}, KeySize)

// FuzzVerify feeds the --verify parser a log file and a head file as
// whoever holds the log's volume could write them: any input gives an
// answer, never a panic, and nothing verifies that the key did not sign.
func FuzzVerify(f *testing.F) {
	f.Add([]byte(""), []byte(nil))
	f.Add([]byte("{}\n"), []byte(`{"seq":1}`))
	f.Fuzz(func(t *testing.T, logBytes, headBytes []byte) {
		if len(headBytes) == 0 {
			headBytes = nil // no head file
		}
		var lines [][]byte
		n, err := VerifyReader(bytes.NewReader(logBytes), headBytes, fuzzKey, func(_ int, raw string) {
			lines = append(lines, []byte(raw))
		})
		var ve *VerifyError
		if err != nil && !errors.As(err, &ve) {
			t.Fatalf("not a VerifyError: %v", err)
		}
		if err != nil {
			return
		}
		if n != len(lines) {
			t.Fatalf("verified %d lines but reported %d", len(lines), n)
		}
		for _, raw := range lines {
			body, mac, ok := splitMAC(raw)
			if !ok || mac != lineMAC(fuzzKey, body) {
				t.Fatalf("a line without a valid MAC verified: %q", raw)
			}
		}
		// The same input under another key never verifies (unless empty).
		other := bytes.Repeat([]byte{0xa5}, KeySize)
		if _, err := VerifyReader(bytes.NewReader(logBytes), headBytes, other, nil); err == nil && (n > 0 || headBytes != nil) {
			t.Fatalf("verified under a different key")
		}
	})
}
