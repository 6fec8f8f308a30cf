package runtime

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/envelope"
)

func TestSecretsFor(t *testing.T) {
	const value = "123456:the-secret-value"
	env := &envelope.Envelope{KID: "k1", Nonce: make([]byte, envelope.NonceSize), CT: make([]byte, envelope.TagSize+4)}
	var gotAAD string
	s := Secrets{
		LookupEnv: func(k string) (string, bool) { return value, k == "BOT_TOKEN" },
		Decrypt: func(_ context.Context, text, aad string) ([]byte, error) {
			gotAAD = aad
			if !strings.Contains(text, `"kid":"k1"`) {
				return nil, errors.New("not the envelope")
			}
			if aad == "channels.bad.botToken" {
				return nil, errors.New("authentication failed")
			}
			return []byte(value), nil
		},
	}
	cases := []struct {
		name    string
		f       config.Secret
		want    string
		wantErr string
		aad     string
	}{
		{"plain", config.Secret{Path: "channels.telegram.botToken", State: config.StatePlain, Plain: value}, value, "", ""},
		{"${VAR} reference", config.Secret{Path: "channels.telegram.botToken", State: config.StateReference, Ref: "${BOT_TOKEN}"}, value, "", ""},
		{"unset ${VAR}", config.Secret{Path: "channels.telegram.botToken", State: config.StateReference, Ref: "${NOPE}"}, "", "channels.telegram.botToken", ""},
		{"envelope, field path as AAD", config.Secret{Path: "channels.telegram.botToken", State: config.StateEnvelope, Envelope: env}, value, "", "channels.telegram.botToken"},
		{"envelope secretsd refuses", config.Secret{Path: "channels.bad.botToken", State: config.StateEnvelope, Envelope: env}, "", "channels.bad.botToken: decrypt through secretsd", "channels.bad.botToken"},
		{"malformed envelope", config.Secret{Path: "channels.telegram.botToken", State: config.StateEnvelope}, "", "set it again with `moltbot config set channels.telegram.botToken`", ""},
		{"not set", config.Secret{Path: "channels.telegram.botToken", State: config.StateEmpty}, "", "moltbot config set channels.telegram.botToken", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gotAAD = ""
			v, err := s.For(nil)(context.Background(), tc.f)
			if tc.wantErr != "" {
				require.Error(t, err)
				require.Contains(t, err.Error(), tc.wantErr)
				require.NotContains(t, err.Error(), value, "a value never reaches an error")
			} else {
				require.NoError(t, err)
				require.Equal(t, tc.want, v)
			}
			require.Equal(t, tc.aad, gotAAD)
		})
	}
}
