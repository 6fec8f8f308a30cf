package ctcheck

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFunc(t *testing.T) {
	tests := []struct {
		name, body string
		wantErr    string
	}{
		{"whole digests", `return subtle.ConstantTimeCompare(a[:], b[:]) == 1`, ""},
		{"converted strings", `return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1`, ""},
		{"plain ==", `return a == b`, "== comparison"},
		{"!= ", `return !(a != b)`, "!= comparison"},
		{"first 4 bytes", `return subtle.ConstantTimeCompare(a[:4], b[:4]) == 1`, "part of a value"},
		{"converted then cut", `return subtle.ConstantTimeCompare([]byte(a)[:4], []byte(b)) == 1`, "part of a value"},
		{"no subtle at all", `return bytes.Equal(a[:], b[:])`, "does not call subtle.ConstantTimeCompare"},
		{"subtle and an early ==", `if a == b { return true }; return subtle.ConstantTimeCompare(a[:], b[:]) == 1`, "== comparison"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "x.go")
			src := "package x\n\nfunc eq(a, b T) bool {\n\t" + tc.body + "\n}\n"
			require.NoError(t, os.WriteFile(p, []byte(src), 0o600))
			err := Func(p, "eq")
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

func TestFuncMissing(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.go")
	require.NoError(t, os.WriteFile(p, []byte("package x\n"), 0o600))
	require.ErrorContains(t, Func(p, "eq"), "no function eq")
	require.ErrorContains(t, Func(filepath.Join(t.TempDir(), "none.go"), "eq"), "none.go")
	require.NoError(t, os.WriteFile(p, []byte("package x\nfunc ("), 0o600))
	require.ErrorContains(t, Func(p, "eq"), "x.go")
}
