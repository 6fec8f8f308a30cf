package offline

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/services/errs"
)

func TestStackDownOnACLIBundle(t *testing.T) {
	tests := []struct {
		name  string
		files []string // relative paths; a trailing / is a dir
		down  bool
	}{
		{"only pki", []string{"pki/", "pki/cli.pem", "pki/cli.token"}, true},
		{"pki and finder junk", []string{"pki/", ".DS_Store"}, true},
		{"state dir with config", []string{"pki/", "moltbot.json"}, false},
		{"upstream state dir", []string{"agents/", "credentials/", "moltbot.json"}, false},
		{"empty", nil, false},
		{"pki is a file", []string{"pki"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tc.files {
				p := filepath.Join(dir, f)
				if f[len(f)-1] == '/' {
					require.NoError(t, os.MkdirAll(p, 0o700))
					continue
				}
				require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o700))
				require.NoError(t, os.WriteFile(p, []byte("x"), 0o600))
			}
			err := StackDown(dir)
			if !tc.down {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, errs.ErrUnavailable)
			require.ErrorContains(t, err, "the stack is down: make up")
			require.ErrorContains(t, err, dir)
		})
	}
	require.NoError(t, StackDown(filepath.Join(t.TempDir(), "missing")))
}
