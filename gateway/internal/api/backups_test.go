package api

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/moltbot/moltbot-secure/gateway/internal/configstore"
	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/envelope"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// gcm seals like secretsd (AES-256-GCM bound to the AAD).
type gcm struct{ a cipher.AEAD }

func newGCM(t *testing.T) gcm {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	b, err := aes.NewCipher(k)
	require.NoError(t, err)
	a, err := cipher.NewGCMWithRandomNonce(b)
	require.NoError(t, err)
	return gcm{a}
}

func (g gcm) Encrypt(_ context.Context, pt []byte, aad string) (string, error) {
	ct := g.a.Seal(nil, nil, pt, []byte(aad))
	return envelope.Envelope{KID: "k1", Nonce: ct[:12], CT: ct[12:]}.Encode()
}

func (g gcm) Decrypt(_ context.Context, text, aad string) ([]byte, error) {
	e, err := envelope.Decode(text)
	if err != nil {
		return nil, err
	}
	return g.a.Open(nil, nil, append(append([]byte{}, e.Nonce...), e.CT...), []byte(aad))
}

func (g gcm) Rewrap(_ context.Context, text, _ string) (string, bool, error) { return text, false, nil }
func (g gcm) Rotate(context.Context) (string, error)                         { return "k1", nil }
func (g gcm) Ping(context.Context) error                                     { return nil }

// fakeUpload is the server side of a MigrateFrom stream fed from a list.
type fakeUpload struct {
	grpc.ServerStream
	msgs []*gatewayv1.MigrateFromRequest
	resp *gatewayv1.MigrateFromResponse
}

func (f *fakeUpload) Context() context.Context { return context.Background() }
func (f *fakeUpload) Recv() (*gatewayv1.MigrateFromRequest, error) {
	if len(f.msgs) == 0 {
		return nil, io.EOF
	}
	m := f.msgs[0]
	f.msgs = f.msgs[1:]
	return m, nil
}
func (f *fakeUpload) SendAndClose(r *gatewayv1.MigrateFromResponse) error { f.resp = r; return nil }

func uploadService(t *testing.T) (*Service, string) {
	dir := t.TempDir()
	st, err := configstore.New(configstore.Config{Path: filepath.Join(dir, "moltbot.json"), StateDir: dir, Secrets: newGCM(t),
		LookupEnv: func(string) (string, bool) { return "", false }})
	require.NoError(t, err)
	return New(Config{Secrets: SecretsDeps{Config: st}}), dir
}

// Files arrive in chunks and are put back together in order; the limits
// hold per file and per stream, before anything is written.
func TestMigrateFromStream(t *testing.T) {
	cfg := []byte(`// upstream
{ channels: { telegram: { botToken: "123:plain-chunked-secret", dmPolicy: "pairing" } } }
`)
	chunks := func(path string, b []byte, n int) []*gatewayv1.MigrateFromRequest {
		var out []*gatewayv1.MigrateFromRequest
		for len(b) > 0 {
			k := min(n, len(b))
			out = append(out, &gatewayv1.MigrateFromRequest{Path: path, Chunk: b[:k]})
			b = b[k:]
		}
		return out
	}
	t.Run("chunked upload", func(t *testing.T) {
		svc, dir := uploadService(t)
		msgs := append([]*gatewayv1.MigrateFromRequest{{Source: "/home/op/.moltbot"}}, chunks("moltbot.json", cfg, 7)...)
		up := &fakeUpload{msgs: msgs}
		require.NoError(t, svc.MigrateFrom(up))
		require.Equal(t, []string{"moltbot.json"}, up.resp.GetImported())
		require.True(t, up.resp.GetChanged())
		got, err := os.ReadFile(filepath.Join(dir, "moltbot.json"))
		require.NoError(t, err)
		require.False(t, bytes.Contains(got, []byte("plain-chunked-secret")))
		c, err := config.Parse("moltbot.json", got)
		require.NoError(t, err)
		v, err := c.Get("channels.telegram.dmPolicy")
		require.NoError(t, err)
		require.Equal(t, "pairing", v, "the reassembled file is the one sent")
	})
	big := bytes.Repeat([]byte{' '}, config.MaxFileBytes)
	tests := []struct {
		name string
		msgs []*gatewayv1.MigrateFromRequest
		want string
	}{
		{"chunk without a path", []*gatewayv1.MigrateFromRequest{{Source: "x", Chunk: []byte("{}")}}, "a chunk without a path"},
		{"file over the limit", append(chunks("moltbot.json", big, 1<<20), &gatewayv1.MigrateFromRequest{Path: "moltbot.json", Chunk: []byte("x")}), "over the 4194304-byte limit"},
		{"path refused", []*gatewayv1.MigrateFromRequest{{Path: "moltbot.json", Chunk: []byte("{}")}, {Path: "keys/secrets.key", Chunk: []byte("{}")}}, "not imported"},
		{"empty stream", nil, "no moltbot.json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			svc, dir := uploadService(t)
			err := svc.MigrateFrom(&fakeUpload{msgs: tc.msgs})
			require.ErrorContains(t, err, tc.want)
			require.ErrorIs(t, err, errs.ErrInvalidArgument)
			ents, _ := os.ReadDir(dir)
			require.Empty(t, ents, "nothing written")
		})
	}
}
