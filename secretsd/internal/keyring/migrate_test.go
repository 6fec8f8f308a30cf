package keyring_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moltbot/moltbot-secure/secretsd/internal/keyring"
	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/migrate"
	"github.com/stretchr/testify/require"
)

var long = flag.Bool("long", false, "run the 1000-trial crash soak (or set MOLTBOT_SOAK=1)")

// ringBox is the in-process Encrypter/Decrypter over the real keyring, the
// same calls secretsd's RPC handlers make.
type ringBox struct{ k *keyring.Keyring }

func (r ringBox) Encrypt(_ context.Context, pt []byte, aad string) (string, error) {
	text, _, err := r.k.EncryptString(pt, aad)
	return text, err
}

func (r ringBox) Decrypt(_ context.Context, text, aad string) ([]byte, error) {
	pt, _, err := r.k.DecryptString(text, aad)
	return pt, err
}

func openRing(t testing.TB, stateDir string) ringBox {
	t.Helper()
	k, err := keyring.Open(keyring.Config{Store: keyring.NewFileStore(filepath.Join(stateDir, "keys", "secrets.key"))})
	require.NoError(t, err)
	return ringBox{k}
}

// manySecrets is an upstream-style config with n channel secrets, a dm
// policy to rewrite and a flag to remove.
func manySecrets(n int) []byte {
	var b strings.Builder
	b.WriteString("// generated\n{\n  gateway: { auth: { token: \"Q2x9bT7mLkP4vW1zRs8NdYcH3fJg6aEuKoXi5qBpVnM\" }, controlUi: { allowInsecureAuth: true } },\n  channels: {\n")
	for i := range n {
		fmt.Fprintf(&b, "    ch%04d: { botToken: \"plain-secret-%04d-%s\", dm: { policy: \"open\", allowFrom: [\"*\"] } },\n", i, i, strings.Repeat("x", 24))
	}
	b.WriteString("  },\n}\n")
	return []byte(b.String())
}

const helperEnv = "MOLTBOT_MIGRATE_HELPER_DIR"

// TestMigrateHelperProcess is the child of the crash test: it runs one
// migrate in the state dir named by the environment and exits.
func TestMigrateHelperProcess(t *testing.T) {
	dir := os.Getenv(helperEnv)
	if dir == "" {
		t.Skip("helper process for TestMigrateCrashSafety")
	}
	box := openRing(t, dir)
	fmt.Println("ready") // the parent times its kill from here
	start := time.Now()
	if _, err := migrate.Run(context.Background(), migrate.Options{StateDir: dir, Encrypter: box}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	fmt.Println(time.Since(start).Nanoseconds())
	os.Exit(0)
}

// checkWhole asserts the config is the old file or a whole new one in which
// every secret is an envelope that decrypts for its field.
func checkWhole(t *testing.T, box ringBox, cfg string, old []byte) string {
	t.Helper()
	b, err := os.ReadFile(cfg)
	require.NoError(t, err)
	if bytes.Equal(b, old) {
		return "old"
	}
	require.True(t, json.Valid(b), "config is neither the old file nor valid JSON (torn write)")
	c, err := config.Parse(cfg, b)
	require.NoError(t, err)
	secrets := config.SecretPaths(c.Raw)
	require.NotEmpty(t, secrets)
	for _, s := range secrets {
		require.Equal(t, config.StateEnvelope, s.State, s.Path)
		text, _ := s.EnvelopeText()
		pt, err := box.Decrypt(context.Background(), text, s.AAD)
		require.NoError(t, err, s.Path)
		require.True(t, strings.HasPrefix(string(pt), "plain-secret-") || strings.HasPrefix(string(pt), "Q2x9"))
	}
	return "new"
}

func TestMigrateCrashSafety(t *testing.T) {
	// About 50 in `make test` (-short too: crash safety is checked on every
	// run), 1000 in `make soak`, or MOLTBOT_CRASH_TRIALS.
	trials := 50
	if *long || os.Getenv("MOLTBOT_SOAK") == "1" {
		trials = 1000
	}
	if v := os.Getenv("MOLTBOT_CRASH_TRIALS"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err, "MOLTBOT_CRASH_TRIALS must be a number")
		trials = n
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "moltbot.json")
	old := manySecrets(300)
	box := openRing(t, dir) // creates the key before any child runs

	run := func(kill time.Duration) (killed bool, took time.Duration) {
		require.NoError(t, os.WriteFile(cfg, old, 0o600))
		for _, p := range []string{cfg + ".backup"} {
			_ = os.Remove(p)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestMigrateHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), helperEnv+"="+dir)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		rd := bufio.NewReader(stdout)
		line, _ := rd.ReadString('\n')
		require.Equal(t, "ready\n", line, "helper: %s", stderr.String())
		if kill >= 0 {
			time.Sleep(kill)
			_ = cmd.Process.Signal(syscall.SIGKILL)
		}
		rest, _ := io.ReadAll(rd)
		err = cmd.Wait()
		if err == nil {
			ns, _ := strconv.ParseInt(strings.TrimSpace(string(rest)), 10, 64)
			return false, time.Duration(ns)
		}
		ee, ok := err.(*exec.ExitError)
		require.True(t, ok && ee.Sys().(syscall.WaitStatus).Signaled(), "helper failed: %v: %s", err, stderr.String())
		return true, 0
	}

	// Calibrate: how long a whole run takes, so kills land all through it.
	killed, full := run(-1)
	require.False(t, killed)
	require.Positive(t, full)
	require.Equal(t, "new", checkWhole(t, box, cfg, old))

	seen := map[string]int{}
	for range trials {
		// Up to 20 % past the calibrated run, so some runs finish.
		delay := time.Duration(rand.Int64N(int64(full)*6/5 + 1))
		killed, _ := run(delay)
		state := checkWhole(t, box, cfg, old)
		if !killed {
			state = "finished"
		}
		seen[state]++
		// The sealed backup, when present, opens to the old bytes.
		if b, err := os.ReadFile(cfg + ".backup"); err == nil {
			_, orig, err := migrate.OpenBackup(context.Background(), box, cfg+".backup", b)
			require.NoError(t, err)
			require.Equal(t, old, orig)
		}
		// A rerun completes whatever the kill interrupted.
		_, err := migrate.Run(context.Background(), migrate.Options{StateDir: dir, Encrypter: box})
		require.NoError(t, err)
		require.Equal(t, "new", checkWhole(t, box, cfg, old))
	}
	t.Logf("%d trials, full run %v: killed with old file %d, killed with new file %d, finished %d",
		trials, full, seen["old"], seen["new"], seen["finished"])
}

func TestMigrateUpstreamWithKeyring(t *testing.T) {
	dir := t.TempDir()
	box := openRing(t, dir)
	cfg := filepath.Join(dir, "moltbot.json")
	orig := []byte(`// my moltbot
{
  gateway: { auth: { token: 'Q2x9bT7mLkP4vW1zRs8NdYcH3fJg6aEuKoXi5qBpVnM' }, // strong
             controlUi: { dangerouslyDisableDeviceAuth: true } },
  channels: { telegram: { botToken: "111:tg-upstream-secret", dm: { policy: "open", allowFrom: ["*"] } } },
  models: { providers: { openai: { apiKey: "sk-upstream-secret" } } },
}
`)
	require.NoError(t, os.WriteFile(cfg, orig, 0o644))
	pd := filepath.Join(dir, "agents", "main", "agent")
	require.NoError(t, os.MkdirAll(pd, 0o755))
	prof := []byte(`{"profiles": {"anthropic:default": {"type": "api_key", "key": "sk-ant-upstream-secret"}}}`)
	require.NoError(t, os.WriteFile(filepath.Join(pd, "auth-profiles.json"), prof, 0o644))

	rep, err := migrate.Run(context.Background(), migrate.Options{StateDir: dir, Encrypter: box})
	require.NoError(t, err)
	require.True(t, rep.Changed)
	require.Empty(t, rep.Unfixed)

	c, err := config.Load(cfg)
	require.NoError(t, err)
	require.Empty(t, c.Validate())
	for _, secret := range []string{"Q2x9bT7mLkP4vW1zRs8NdYcH3fJg6aEuKoXi5qBpVnM", "tg-upstream-secret", "sk-upstream-secret", "sk-ant-upstream-secret"} {
		require.NoError(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			require.NotContains(t, string(b), secret, p)
			return nil
		}))
	}
	// A ciphertext moved to another field does not decrypt, naming the field.
	tok, _ := c.Get("gateway.auth.token")
	text, _ := json.Marshal(tok)
	_, err = box.Decrypt(context.Background(), string(text), "channels.telegram.botToken")
	require.ErrorContains(t, err, "decrypt channels.telegram.botToken: ciphertext does not belong to this field or key")

	_, err = migrate.Rollback(context.Background(), migrate.RollbackOptions{StateDir: dir, Decrypter: box})
	require.NoError(t, err)
	b, _ := os.ReadFile(cfg)
	require.Equal(t, orig, b)
	b, _ = os.ReadFile(filepath.Join(pd, "auth-profiles.json"))
	require.Equal(t, prof, b)
}
