//go:build integration

package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	secretsv1 "github.com/moltbot/moltbot-secure/proto/secrets/v1"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/testharness"
)

// TestKeyBackupExportImportAcrossStacks is disaster recovery end to end on
// real containers: export the key from stack A, encrypt a config secret in
// A, import the key into a fresh stack B, and B reads A's moltbot.json.
// Around it: the refusals (B after use, A which has secrets, a wrong
// passphrase, a client-role caller) and the security log.
func TestKeyBackupExportImportAcrossStacks(t *testing.T) {
	a, b := startSecrets(t), startSecrets(t)
	dir := t.TempDir()
	passFile := filepath.Join(dir, "pass")
	require.NoError(t, os.WriteFile(passFile, []byte("correct horse battery staple\n"), 0o600))
	wrongPass := filepath.Join(dir, "wrong")
	require.NoError(t, os.WriteFile(wrongPass, []byte("not the right passphrase\n"), 0o600))
	out := filepath.Join(dir, "moltbot-key.age")

	// No terminal and no --passphrase-file: exit 2 at once, nothing written.
	start := time.Now()
	r := a.cli("", "security", "key", "export", "--out", out)
	require.Equal(t, 2, r.code, r.out)
	require.Less(t, time.Since(start), 10*time.Second)
	require.Contains(t, r.out, "--passphrase-file")
	require.NoFileExists(t, out)

	// A client-role caller (gateway token, no cli certificate) is refused.
	_, err := gatewayv1.NewGatewayClient(a.st.TokenConn(t)).ExportKey(ctxFor(t, 30*time.Second), &gatewayv1.ExportKeyRequest{Passphrase: []byte("correct horse battery staple")})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	// And the gateway is the only service identity secretsd exports for.
	_, err = a.secretsAsCLI().ExportKey(ctxFor(t, 30*time.Second), &secretsv1.ExportKeyRequest{Passphrase: []byte("correct horse battery staple")})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)

	r = a.cli("", "security", "key", "export", "--out", out, "--passphrase-file", passFile)
	require.Equal(t, 0, r.code, r.out)
	sealed, err := os.ReadFile(out)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(sealed), "-----BEGIN AGE ENCRYPTED FILE-----"), string(sealed))
	fi, err := os.Stat(out)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	keyFileA, err := os.ReadFile(filepath.Join(a.st.StateDir(testharness.Secretsd), "keys", "secrets.key"))
	require.NoError(t, err)
	var kf struct {
		Keys []struct{ Key string } `json:"keys"`
	}
	require.NoError(t, json.Unmarshal(keyFileA, &kf))
	require.NotEmpty(t, kf.Keys)
	for _, k := range kf.Keys {
		require.NotContains(t, r.out, k.Key, "the CLI never prints key material")
		require.NotContains(t, string(sealed), k.Key, "the export holds ciphertext only")
	}

	// A encrypts a secret after the export: the export covers keys, not data.
	const bot = "4242:AAkeyBACKUPtokenAAkeyBACKUPtoken_z"
	r = a.cli(bot+"\n", "config", "set", "channels.telegram.botToken", "-")
	require.Equal(t, 0, r.code, r.out)
	r = a.cli("", "config", "set", "channels.telegram.enabled", "false")
	require.Equal(t, 0, r.code, r.out)
	cfgA, err := os.ReadFile(a.cfgPath())
	require.NoError(t, err)
	require.NotContains(t, string(cfgA), bot)

	// A now protects a secret: importing into A is refused, and says why.
	r = a.cli("", "security", "key", "import", "--in", out, "--passphrase-file", passFile)
	require.Equal(t, 1, r.code, r.out)
	require.Contains(t, r.out, "already protects secrets")
	require.NotContains(t, r.out, "rpc error")

	// B: a wrong passphrase is a clear error and changes nothing.
	keyFileB := filepath.Join(b.st.StateDir(testharness.Secretsd), "keys", "secrets.key")
	beforeB, err := os.ReadFile(keyFileB)
	require.NoError(t, err)
	r = b.cli("", "security", "key", "import", "--in", out, "--passphrase-file", wrongPass)
	require.Equal(t, 1, r.code, r.out)
	require.Contains(t, r.out, "passphrase does not open")
	afterB, err := os.ReadFile(keyFileB)
	require.NoError(t, err)
	require.Equal(t, beforeB, afterB)

	r = b.cli("", "security", "key", "import", "--in", out, "--passphrase-file", passFile)
	require.Equal(t, 0, r.code, r.out)
	require.Contains(t, r.out, "imported the keyring")

	// A's whole config placed into B's gateway: B decrypts A's envelope.
	// `gateway restart` (a reload in place) is the step README gives.
	require.NoError(t, b.st.WriteStateFile(testharness.Gateway, "moltbot.json", cfgA))
	r = b.cli("", "gateway", "restart")
	require.Equal(t, 0, r.code, r.out)
	r = b.cli("", "config", "get", "channels.telegram.botToken", "--reveal")
	require.Equal(t, 0, r.code, r.out)
	require.Equal(t, bot, strings.TrimSpace(r.out))

	// B has now opened a user secret under the imported keyring: a second
	// import would orphan it and is refused.
	r = b.cli("", "security", "key", "import", "--in", out, "--passphrase-file", passFile)
	require.Equal(t, 1, r.code, r.out)
	require.Contains(t, r.out, "already protects secrets")

	// Both are in the security logs, with the actor and never key material.
	logA, err := os.ReadFile(filepath.Join(a.st.StateDir(testharness.Gateway), "logs", "security.jsonl"))
	require.NoError(t, err)
	logB, err := os.ReadFile(filepath.Join(b.st.StateDir(testharness.Gateway), "logs", "security.jsonl"))
	require.NoError(t, err)
	require.True(t, hasEvent(string(logA), "key.export", auth.RoleOwner), string(logA))
	require.True(t, hasEvent(string(logB), "key.import", auth.RoleOwner), string(logB))
	for _, k := range kf.Keys {
		require.NotContains(t, string(logA)+string(logB), k.Key)
	}
	require.NotContains(t, string(logA)+string(logB), "AGE ENCRYPTED")
}

// hasEvent reports whether one log line has both kind and actor.
func hasEvent(log, kind, actor string) bool {
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, `"`+kind+`"`) && strings.Contains(line, `"`+actor+`"`) {
			return true
		}
	}
	return false
}
