package envelope

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/moltbot/moltbot-secure/services/errs"
	"github.com/stretchr/testify/require"
)

func sample() Envelope {
	return Envelope{KID: "k2", Nonce: bytes.Repeat([]byte{1}, NonceSize), CT: bytes.Repeat([]byte{2}, TagSize+5)}
}

func TestRoundTrip(t *testing.T) {
	e := sample()
	text, err := e.Encode()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(text, `{"$enc":"v1","kid":"k2","alg":"AES-256-GCM","nonce":"`))
	got, err := Decode(text)
	require.NoError(t, err)
	require.True(t, e.Equal(got))

	got2, err := FromMap(e.Map())
	require.NoError(t, err)
	require.True(t, e.Equal(got2))
	require.True(t, IsEnvelope(text))
	require.True(t, IsEnvelope(e.Map()))
	require.False(t, IsEnvelope("plain-secret"))
	require.False(t, IsEnvelope(map[string]any{"a": 1}))
	got3, err := DecodeValue(e.Map())
	require.NoError(t, err)
	require.True(t, e.Equal(got3))
}

func TestDecodeErrors(t *testing.T) {
	good := sample().Map()
	mod := func(k string, v any) map[string]any {
		m := map[string]any{}
		for kk, vv := range good {
			m[kk] = vv
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name string
		in   map[string]any
		want string
	}{
		{"unknown version", mod("$enc", "v9"), `version "v9"`},
		{"unknown alg", mod("alg", "ChaCha20"), `algorithm "ChaCha20"`},
		{"long version clipped to 32", mod("$enc", strings.Repeat("v", 33)), `version "` + strings.Repeat("v", 32) + `..."`},
		{"version of exactly 32 kept", mod("$enc", strings.Repeat("w", 32)), `version "` + strings.Repeat("w", 32) + `"`},
		{"long alg clipped", mod("alg", strings.Repeat("A", 5000)), `algorithm "` + strings.Repeat("A", 32) + `..."`},
		{"missing kid", mod("kid", nil), `missing "kid"`},
		{"empty kid", mod("kid", ""), "empty key id"},
		{"bad base64 nonce", mod("nonce", "!!!"), `"nonce" is not valid base64`},
		{"bad base64 ct", mod("ct", "a"), `"ct" is not valid base64`},
		{"short nonce", mod("nonce", "AAAA"), "nonce is 3 bytes, want 12"},
		{"truncated ct", mod("ct", "AAAA"), "ciphertext is 3 bytes, shorter than the 16-byte GCM tag"},
		{"wrong type", mod("ct", 12.0), `"ct" is a number, want a string`},
		{"unknown key", mod("extra", "x"), "unknown key(s) extra"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FromMap(tc.in)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
			require.True(t, errors.Is(err, errs.ErrInvalidArgument))
		})
	}
	for _, s := range []string{"", "null", "[]", `{"$enc":"v1"} {}`, "{", strings.Repeat(" ", MaxTextSize+1)} {
		_, err := Decode(s)
		require.Error(t, err, "input %.20q", s)
	}
	_, err := DecodeValue(3.0)
	require.ErrorContains(t, err, "want a JSON object")
}

func FuzzDecode(f *testing.F) {
	text, _ := sample().Encode()
	f.Add(text)
	f.Add(`{"$enc":"v1","kid":"k1","alg":"AES-256-GCM","nonce":"AAAAAAAAAAAAAAAA","ct":""}`)
	f.Add(`{}`)
	f.Fuzz(func(t *testing.T, s string) {
		e, err := Decode(s)
		if fast, ok := decodeFast(s); ok {
			// The fast path may only accept what the strict path accepts.
			var m map[string]any
			if json.Unmarshal([]byte(s), &m) != nil {
				t.Fatalf("fast path accepted invalid JSON %q", s)
			}
			strict, serr := FromMap(m)
			if serr != nil || !strict.Equal(fast) {
				t.Fatalf("fast path disagrees with the strict path on %q: %v", s, serr)
			}
		}
		if err != nil {
			return
		}
		again, err := e.Encode()
		if err != nil {
			t.Fatalf("decoded envelope does not encode: %v", err)
		}
		e2, err := Decode(again)
		if err != nil || !e.Equal(e2) {
			t.Fatalf("round trip changed the envelope: %v", err)
		}
	})
}

func TestDecodeFastPathAgreesOnOddKeys(t *testing.T) {
	good := Envelope{KID: "k1", Nonce: make([]byte, NonceSize), CT: make([]byte, TagSize)}
	text, err := good.Encode()
	require.NoError(t, err)
	e, err := Decode(text)
	require.NoError(t, err)
	require.True(t, e.Equal(good))
	for _, bad := range []string{
		strings.Replace(text, `"kid"`, `"KID"`, 1),
		strings.Replace(text, `}`, `,"Kid":"k2"}`, 1),
		strings.Replace(text, `"kid"`, `"\u212aid"`, 1),
		strings.Replace(text, `"kid":"k1"`, `"kid":null`, 1),
	} {
		_, err := Decode(bad)
		require.Error(t, err, bad)
	}
}
