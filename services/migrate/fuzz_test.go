package migrate

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// FuzzOpenBackup reads arbitrary bytes as a sealed backup file (what
// `security rollback` and `migrate` read back from disk). No panic; a refusal
// names the file; only a backup sealed under the key opens, and then to the
// bytes that were sealed. Seeds include deep and wide JSON.
func FuzzOpenBackup(f *testing.F) {
	box := newBox(f)
	orig := []byte(`{"gateway": {"auth": {"token": "x"}}}`)
	sealed, err := sealBackupBy(context.Background(), box, "moltbot.json", orig, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), WriterMigrate)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed)
	f.Add(bytes.Replace(sealed, []byte("moltbot.json"), []byte("../etc/passwd"), 1))
	f.Add([]byte(`{"format": "x"}`))
	f.Add([]byte(`{"sealed": ` + strings.Repeat(`{"a":`, 5000) + `1` + strings.Repeat(`}`, 5000) + `}`))
	f.Add([]byte(`{"file": [` + strings.Repeat(`"x",`, 20000) + `"x"]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rel, got, err := OpenBackup(context.Background(), box, "b.json", data)
		if err != nil {
			if !strings.Contains(err.Error(), "b.json") {
				t.Fatalf("refusal does not name the file: %v", err)
			}
			return
		}
		// AES-GCM under a fresh key: only our own sealed bytes can open.
		if rel != "moltbot.json" || !bytes.Equal(got, orig) {
			t.Fatalf("opened a backup that was not sealed here: %q %q", rel, got)
		}
	})
}
