package config

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/envelope"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// fakeSecretsd opens envelopes by field (AAD), like secretsd would.
type fakeSecretsd struct {
	plain map[string]string
	err   error
}

func (f fakeSecretsd) Decrypt(_ context.Context, _, aad string) ([]byte, error) {
	if f.err != nil {
		return nil, f.err
	}
	v, ok := f.plain[aad]
	if !ok {
		return nil, fmt.Errorf("message authentication failed: %w", errs.ErrPermissionDenied)
	}
	return []byte(v), nil
}

// Offline validate on the state dir opens encrypted values through
// secretsd and runs the same decrypted checks as the gateway.
func TestValidateFileDecryptsThroughSecretsd(t *testing.T) {
	const weakHex = "0123456789abcdef0123456789abcdef0123456789abcdef"
	c := config.New("moltbot.json", nil)
	env := envelope.Envelope{KID: "k1", Nonce: make([]byte, 12), CT: make([]byte, 20)}.Map()
	require.NoError(t, c.Set("gateway.auth.token", env))
	data, err := c.Marshal()
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "moltbot.json")
	require.NoError(t, os.WriteFile(path, data, 0o600))

	tests := []struct {
		name      string
		dec       decrypter
		checked   bool
		wantID    string
		wantInMsg string
	}{
		{"weak encrypted token", fakeSecretsd{plain: map[string]string{"gateway.auth.token": weakHex}}, true, config.IDTokenLowEntropy, "the encrypted token has 48 characters, 16 distinct"},
		{"does not open", fakeSecretsd{plain: map[string]string{}}, true, "", "does not decrypt for its field"},
		{"secretsd down", fakeSecretsd{err: fmt.Errorf("secretsd unreachable: %w", errs.ErrUnavailable)}, false, "", ""},
		{"no secretsd", nil, false, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ps, checked, err := validateFile(context.Background(), path, tc.dec)
			require.NoError(t, err)
			require.Equal(t, tc.checked, checked)
			var hit *config.Problem
			for i := range ps {
				if ps[i].Path == "gateway.auth.token" {
					hit = &ps[i]
				}
			}
			if tc.wantInMsg == "" {
				require.Nil(t, hit, "%v", ps)
				return
			}
			require.NotNil(t, hit, "%v", ps)
			require.Equal(t, tc.wantID, hit.ID)
			require.Contains(t, hit.Message, tc.wantInMsg)
			require.NotContains(t, hit.String(), weakHex)
		})
	}
}
