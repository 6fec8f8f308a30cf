package configstore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/config"
)

// BenchmarkSet: `config set` of a plain field with N encrypted secrets in
// the file. Each write checks every other envelope still decrypts, seals a
// backup of the old file, writes atomically and reloads, so it grows with
// N; benchreport shows how (100 and 1,000 against 10). secretsd is the
// in-process AES-GCM keyring here: the row measures the store's own work.
func BenchmarkSet(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("secrets=%d", n), func(b *testing.B) {
			kr := newKeyring()
			ctx := auth.WithCaller(context.Background(), auth.Caller{ID: auth.IDCLI})
			c := config.New("moltbot.json", nil)
			for i := 0; i < n; i++ {
				p := fmt.Sprintf("channels.telegram.accounts.a%d.botToken", i)
				text, err := kr.Encrypt(ctx, []byte(fmt.Sprintf("%d:bot-token-%d", i, i)), p)
				if err != nil {
					b.Fatal(err)
				}
				env, err := config.EnvelopeValue(text)
				if err != nil {
					b.Fatal(err)
				}
				if err := c.Set(p, env); err != nil {
					b.Fatal(err)
				}
			}
			data, err := c.Marshal()
			if err != nil {
				b.Fatal(err)
			}
			dir := b.TempDir()
			path := filepath.Join(dir, "moltbot.json")
			if err := os.WriteFile(path, data, 0o600); err != nil {
				b.Fatal(err)
			}
			st, err := New(Config{Path: path, StateDir: dir, Secrets: kr, LookupEnv: func(string) (string, bool) { return "", false }})
			if err != nil {
				b.Fatal(err)
			}
			levels := []string{"info", "debug"}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := st.Set(ctx, "logging.level", levels[i%2], true, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
