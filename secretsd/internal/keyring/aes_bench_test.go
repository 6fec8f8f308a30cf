package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"testing"
)

// BenchmarkAESGCM is the reference for make bench: AES-256-GCM seal+open
// of 64 bytes in process with a random nonce, nothing else.
func BenchmarkAESGCM(b *testing.B) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	blk, err := aes.NewCipher(key)
	if err != nil {
		b.Fatal(err)
	}
	g, err := cipher.NewGCMWithRandomNonce(blk)
	if err != nil {
		b.Fatal(err)
	}
	pt := make([]byte, 64)
	aad := []byte("models.providers.openai.apiKey")
	for b.Loop() {
		ct := g.Seal(nil, nil, pt, aad)
		if _, err := g.Open(nil, nil, ct, aad); err != nil {
			b.Fatal(err)
		}
	}
}
