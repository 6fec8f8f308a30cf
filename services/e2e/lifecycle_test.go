//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestJourney is the operator's walk, in order: each step leaves the stack
// up for the next, and the last one purges and rebuilds it.
func TestJourney(t *testing.T) {
	steps := []struct {
		name string
		fn   func(*testing.T)
	}{
		{"client role is refused every owner method", clientRefusedOwnerMethods},
		{"a 50,000-deep value is refused and the gateway keeps serving", deepValueRefused},
		{"exec reads no key, token or secret file", execReadsNoSecrets},
		{"rotating the gateway token keeps the owner", tokenRotationKeepsOwner},
		{"make down and make up keep config, approvals and key", downUpKeepsState},
		{"a tampered security log fails verify", securityLogTamper},
		{"key export, purge, up, import decrypts the old config", keyExportPurgeImport},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.fn) {
			t.Fatalf("step %q failed; later steps depend on it", s.name)
		}
	}
}

var codeRE = regexp.MustCompile(`\b[A-HJ-NP-Z2-9]{8}\b`)

// pairLocal makes sender DM the bot on the local channel and returns the
// pairing code from the reply.
func pairLocal(t *testing.T, sender string) string {
	t.Helper()
	r := owner(t, "message", "send", "--channel", "local", "--from", sender, "hello")
	code := codeRE.FindString(r.Out)
	if code == "" {
		t.Fatalf("no pairing code in the reply to %s: %s", sender, r)
	}
	return code
}

// A marker secret the owner sets; its plaintext must come back after a
// restart and after a key import, and never be on disk.
const markerPath = "models.providers.openai.apiKey"
const markerValue = "sk-e2e-marker-7f3a9c2e1b5d4f6a8c0e2b4d6f8a1c3e"

func downUpKeepsState(t *testing.T) {
	if r := owner(t, "config", "set", markerPath, markerValue); r.Code != 0 {
		t.Fatalf("config set: %s", r)
	}
	code := pairLocal(t, "dora")
	if r := owner(t, "pairing", "approve", "local", code); r.Code != 0 {
		t.Fatalf("approve: %s", r)
	}
	mustMake(t, "down")
	mustMake(t, "up")
	if r := owner(t, "config", "get", markerPath, "--reveal"); r.Code != 0 || !strings.Contains(r.Out, markerValue) {
		t.Fatalf("the secret did not survive make down/up: %s", r)
	}
	if r := owner(t, "pairing", "list", "--allowed"); !strings.Contains(r.Out, "dora") {
		t.Fatalf("the approval did not survive make down/up: %s", r)
	}
	// Encrypted at rest: the plaintext is in no file of the gateway's volume.
	vol := volumeAt(t, "gateway", "/state")
	if r := inVolume(t, vol, `grep -rl '`+markerValue+`' /v; true`); strings.TrimSpace(r.Out) != "" {
		t.Fatalf("plaintext secret on disk in %s", r.Out)
	}
}

func keyExportPurgeImport(t *testing.T) {
	dir := t.TempDir()
	pass := filepath.Join(dir, "pass")
	if err := os.WriteFile(pass, []byte("correct horse battery staple e2e\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "secrets.key.age")
	if r := owner(t, "security", "key", "export", "--out", out, "--passphrase-file", pass); r.Code != 0 {
		t.Fatalf("key export: %s", r)
	}
	b, err := os.ReadFile(out)
	if err != nil || !strings.HasPrefix(string(b), "-----BEGIN AGE ENCRYPTED FILE-----") {
		t.Fatalf("the export is not an armored age file: %v %q", err, firstLine(b))
	}
	// The operator keeps the (encrypted) config too.
	old := inVolume(t, volumeAt(t, "gateway", "/state"), `cat /v/moltbot.json`)
	if old.Code != 0 || !strings.Contains(old.Out, `"$enc"`) {
		t.Fatalf("read old config: %s", old)
	}
	mustMake(t, "purge")
	mustMake(t, "up")
	if r := owner(t, "config", "get", markerPath, "--reveal"); strings.Contains(r.Out, markerValue) {
		t.Fatalf("purge kept the secret: %s", r)
	}
	if r := owner(t, "security", "key", "import", "--in", out, "--passphrase-file", pass); r.Code != 0 {
		t.Fatalf("key import: %s", r)
	}
	cfg := filepath.Join(dir, "moltbot.json")
	if err := os.WriteFile(cfg, []byte(old.Out), 0o600); err != nil {
		t.Fatal(err)
	}
	vol := volumeAt(t, "gateway", "/state")
	r := run(t, time.Minute, nil, "docker", "run", "--rm", "--network", "none", "--user", "0:0",
		"--entrypoint", "/bin/busybox", "-v", vol+":/v", "-v", cfg+":/in/moltbot.json:ro", helperImage,
		"sh", "-c", "cat /in/moltbot.json > /v/moltbot.json.tmp && chown 65101:65101 /v/moltbot.json.tmp && chmod 600 /v/moltbot.json.tmp && mv /v/moltbot.json.tmp /v/moltbot.json")
	if r.Code != 0 {
		t.Fatalf("restore old config: %s", r)
	}
	if r := owner(t, "gateway", "restart"); r.Code != 0 {
		t.Fatalf("gateway restart with the old config: %s", r)
	}
	if r := owner(t, "config", "get", markerPath, "--reveal"); r.Code != 0 || !strings.Contains(r.Out, markerValue) {
		t.Fatalf("the imported key does not decrypt the old config: %s", r)
	}
}

func firstLine(b []byte) string {
	s := string(b)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
