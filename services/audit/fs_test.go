package audit

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"testing"
	"time"

	"github.com/moltbot/moltbot-secure/services/atomicfile"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/stretchr/testify/require"
)

// seedBefore is every bad part of the seed's "before" examples together:
// a short plaintext token, the deprecated controlUi flags, DM policy open
// with "*", group policy open, sandbox off, plaintext channel secrets.
const seedBefore = `{
  "gateway": {
    "auth": {"mode": "token", "token": "short-token-123"},
    "controlUi": {"allowInsecureAuth": false, "dangerouslyDisableDeviceAuth": false}
  },
  "channels": {
    "telegram": {
      "botToken": "123456:AAH-plain-telegram-token",
      "dm": {"policy": "open", "allowFrom": ["*"]},
      "groups": {"policy": "open"}
    }
  },
  "agents": {"defaults": {"sandbox": {"mode": "off"}}}
}`

func writeFile(t *testing.T, root, rel string, b []byte, mode fs.FileMode) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o700))
	require.NoError(t, os.WriteFile(p, b, mode))
	require.NoError(t, os.Chmod(p, mode)) // umask-proof
}

func mkdir(t *testing.T, root, rel string, mode fs.FileMode) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	require.NoError(t, os.MkdirAll(p, mode))
	require.NoError(t, os.Chmod(p, mode))
}

func jsonBytes(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	require.NoError(t, err)
	return b
}

// auditDir snapshots root and runs the engine the way the CLI does offline.
func auditDir(t *testing.T, root string, mod func(*Input)) (Report, Input) {
	t.Helper()
	snap, err := SnapshotDir(root)
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join(root, "moltbot.json"))
	require.NoError(t, err)
	var cfg map[string]any
	require.NoError(t, json.Unmarshal(b, &cfg))
	in := Input{
		Config: cfg, ConfigPath: filepath.Join(root, "moltbot.json"), Snapshot: snap,
		ProcessUID: os.Getuid(), Now: now,
		Certs: []CertInfo{{Name: "gateway", NotAfter: now.Add(365 * 24 * time.Hour)}},
	}
	if mod != nil {
		mod(&in)
	}
	return Run(in), in
}

func critical(r Report) []string {
	var out []string
	for _, f := range r.Findings {
		if f.Severity == Critical && !f.Acknowledged {
			out = append(out, f.ID)
		}
	}
	return out
}

// TestSeedBeforeFixAfter: the seed's "before" state dir scores below 50;
// --fix (Plan + ApplyConfigFixes + the caller's token and chmod steps) and
// `security migrate` (simulated: dm open -> pairing, "*" dropped, secrets
// sealed, key created) bring it to >= 85 with no critical; a second Plan is
// empty.
func TestSeedBeforeFixAfter(t *testing.T) {
	root := filepath.Join(t.TempDir(), "state")
	mkdir(t, root, ".", 0o755)
	writeFile(t, root, "moltbot.json", []byte(seedBefore), 0o644)
	writeFile(t, root, "agents/main/agent/auth-profiles.json", []byte(`{"profiles":{"openai":{"apiKey":"sk-plain-openai-key-123"}}}`), 0o644)
	mkdir(t, root, "credentials", 0o755)
	mkdir(t, root, "sessions", 0o700)
	writeFile(t, root, "logs/gateway.log", []byte("started\n"), 0o644)

	before, in := auditDir(t, root, nil)
	for _, id := range []string{
		"gateway.auth.token_short", "gateway.auth.token_plaintext", "gateway.control_ui.insecure_auth",
		"gateway.control_ui.device_auth_disabled", "channels.telegram.dm.open", "channels.telegram.dm.allowFrom.wildcard",
		"channels.telegram.groups.open", "sandbox.mode_off", "secrets.plaintext", "secrets.key_missing",
		"fs.state_dir.perms_world_readable", "fs.config.perms_world_readable", "fs.auth_profiles.perms_world_readable",
		"fs.credentials_dir.perms_world_readable", "fs.log_file.perms_world_readable", "summary.attack_surface",
	} {
		require.True(t, before.Has(id), "missing %s in %v", id, ids(before))
	}
	require.Less(t, before.Score, 50)
	require.Equal(t, "critical", before.Band)

	// --fix
	plan := Plan(before, in)
	kinds := map[FixKind]int{}
	for _, a := range plan {
		kinds[a.Kind]++
	}
	require.Equal(t, 2, kinds[KindRemoveConfig], "%+v", plan)
	require.Equal(t, 1, kinds[KindSetConfig])
	require.Equal(t, 1, kinds[KindGenerateToken])
	require.GreaterOrEqual(t, kinds[KindChmod], 5)

	tree, changes := ApplyConfigFixes(in.Config, plan)
	require.Len(t, changes, 3, "%v", changes)
	require.Equal(t, "short-token-123", in.Config["gateway"].(map[string]any)["auth"].(map[string]any)["token"], "input tree untouched")
	var token string
	for _, a := range plan {
		switch a.Kind {
		case KindGenerateToken:
			var err error
			token, err = auth.GenerateToken(rand.Reader)
			require.NoError(t, err)
			// The caller seals it through secretsd; an envelope stands in.
			tree["gateway"].(map[string]any)["auth"].(map[string]any)["token"] = testEnvelope("k1")
		case KindChmod:
			p := filepath.Join(root, filepath.FromSlash(a.Path))
			fi, err := os.Lstat(p)
			require.NoError(t, err)
			require.Zero(t, fi.Mode()&fs.ModeSymlink)
			require.NoError(t, os.Chmod(p, a.Mode))
		}
	}
	// security migrate
	tg := tree["channels"].(map[string]any)["telegram"].(map[string]any)
	tg["dm"] = map[string]any{"policy": "pairing"}
	tg["botToken"] = testEnvelope("k1")
	writeFile(t, root, "moltbot.json", jsonBytes(t, tree), 0o600)
	writeFile(t, root, "agents/main/agent/auth-profiles.json",
		jsonBytes(t, map[string]any{"profiles": map[string]any{"openai": map[string]any{"apiKey": testEnvelope("k1")}}}), 0o600)
	mkdir(t, root, "keys", 0o700)
	writeFile(t, root, "keys/secrets.key", []byte(`{"keys":[]}`), 0o600)

	after, in2 := auditDir(t, root, func(in *Input) { in.Token, in.TokenSource = token, "gateway.auth.token" })
	require.Empty(t, critical(after), "%v", ids(after))
	require.GreaterOrEqual(t, after.Score, 85, "%v", ids(after))
	require.True(t, after.Has("sandbox.mode_off"), "not a safe fix: needs Docker")
	require.Empty(t, Plan(after, in2), "second --fix changes nothing")
	_, changes = ApplyConfigFixes(in2.Config, plan)
	require.Empty(t, changes, "re-applying the first plan is a no-op")
}

// TestFreshStack: what `make up` leaves (token by ${file:...} reference,
// pairing DMs, default sandbox, tight modes, key present, certs valid)
// scores >= 85 with no critical.
func TestFreshStack(t *testing.T) {
	root := filepath.Join(t.TempDir(), "state")
	mkdir(t, root, ".", 0o700)
	cfg := map[string]any{
		"version": 1,
		"gateway": map[string]any{"bind": "loopback", "auth": map[string]any{"mode": "token", "token": "${file:pki/gateway.token}"}},
		"channels": map[string]any{"telegram": map[string]any{
			"botToken": testEnvelope("k1"), "dm": map[string]any{"policy": "pairing"}, "groups": map[string]any{"policy": "allowlist"}}},
	}
	writeFile(t, root, "moltbot.json", jsonBytes(t, cfg), 0o600)
	for _, d := range []string{"keys", "tokens", "credentials", "agents", "sandbox", "sessions", "logs"} {
		mkdir(t, root, d, 0o700)
	}
	mkdir(t, root, "pki", 0o700)
	writeFile(t, root, "keys/secrets.key", []byte(`{"keys":[]}`), 0o600)
	writeFile(t, root, "pki/ca.crt", []byte("-----BEGIN CERTIFICATE-----\n"), 0o644)
	writeFile(t, root, "pki/gateway.key", []byte("-----BEGIN PRIVATE KEY-----\n"), 0o400)
	writeFile(t, root, "pki/gateway.token", []byte(strongToken+"\n"), 0o440)
	writeFile(t, root, "logs/security.jsonl", []byte("{}\n"), 0o600)
	writeFile(t, root, "credentials/telegram-allowFrom.json", []byte(`{"version":1,"allowFrom":["123"]}`), 0o600)

	r, _ := auditDir(t, root, func(in *Input) {
		in.Token, in.TokenSource = strongToken, "gateway.auth.token"
		in.KeyStatus = &KeyInfo{IDs: []string{"k1"}, Primary: "k1", CreatedAt: now.Add(-24 * time.Hour)}
	})
	require.Empty(t, critical(r), "%+v", r.Findings)
	require.GreaterOrEqual(t, r.Score, 85, "%+v", r.Findings)
	require.Equal(t, 100, r.Score, "%v", ids(r))
}

func TestSnapshotFindings(t *testing.T) {
	root := filepath.Join(t.TempDir(), "state")
	outside := t.TempDir()
	mkdir(t, root, ".", 0o700)
	writeFile(t, root, "moltbot.json", []byte(`{"gateway":{"auth":{"token":"${file:pki/gateway.token}"}}}`), 0o600)
	writeFile(t, root, "keys/secrets.key", []byte("{}"), 0o600)
	// a stray plaintext copy, a sealed backup, a world-writable key dir,
	// a symlink out, a dangling symlink, a credentials file with a secret
	writeFile(t, root, "moltbot.json.bak", []byte(`{"gateway":{"auth":{"token":"an-old-plaintext-token-value"}}}`), 0o600)
	writeFile(t, root, "moltbot.json.backup", jsonBytes(t, testEnvelope("k1")), 0o600)
	writeFile(t, root, "notes~", []byte(`token: "json5-style-secret-value"`), 0o600)
	require.NoError(t, os.Chmod(filepath.Join(root, "keys"), 0o777))
	writeFile(t, outside, "secret.txt", []byte("x"), 0o600)
	require.NoError(t, os.Symlink(filepath.Join(outside, "secret.txt"), filepath.Join(root, "link-out")))
	require.NoError(t, os.Symlink("does-not-exist", filepath.Join(root, "dangling")))
	require.NoError(t, os.Symlink("moltbot.json", filepath.Join(root, "link-in")))
	writeFile(t, root, "credentials/whatsapp.json", []byte(`{"creds":{"password":"wa-plain-password"}}`), 0o600)
	writeFile(t, root, "credentials/telegram-allowFrom.json", []byte(`{"allowFrom":["1"]}`), 0o600)
	if os.Getuid() == 0 {
		require.NoError(t, os.Lchown(filepath.Join(root, "credentials/telegram-allowFrom.json"), 4242, 4242))
	}

	r, _ := auditDir(t, root, func(in *Input) { in.Token = strongToken })
	f, ok := r.Find("secrets.plaintext")
	require.True(t, ok, "%v", ids(r))
	require.Equal(t, Critical, f.Severity, "a stray copy makes it critical")
	require.Contains(t, f.Detail, "moltbot.json.bak")
	require.Contains(t, f.Detail, "notes~")
	require.Contains(t, f.Detail, "credentials/whatsapp.json")
	require.NotContains(t, f.Detail, "moltbot.json.backup", "a sealed backup is fine")
	require.NotContains(t, f.Detail, "plaintext-token-value", "never a secret value")
	f, _ = r.Find("fs.keys_dir.perms_world_writable")
	require.Equal(t, Critical, f.Severity)
	require.True(t, f.Fixable)
	f, _ = r.Find("fs.symlink_escape")
	require.Contains(t, f.Detail, "link-out")
	require.Contains(t, f.Detail, "dangling")
	require.NotContains(t, f.Detail, "link-in")
	if os.Getuid() == 0 {
		f, _ = r.Find("fs.owner_mismatch")
		require.Contains(t, f.Detail, "uid 4242")
	}
	for _, a := range Plan(r, Input{}) {
		require.NotEqual(t, "link-out", a.Path, "symlinks are never chmod-ed")
	}
}

func TestSnapshotUnreadableAndSynced(t *testing.T) {
	// Constructed snapshots: root can read anything, and a Dropbox path
	// needs no Dropbox.
	r := Run(Input{
		Config: parse(t, `{"gateway":{"auth":{"token":"${file:t}"}}}`), ProcessUID: 1000, Now: now,
		Snapshot: Snapshot{Root: "/Users/ann/Dropbox/.moltbot", Entries: []Entry{
			{Rel: ".", Mode: fs.ModeDir | 0o700, IsDir: true, UID: 1000},
			{Rel: "keys/secrets.key", Mode: 0o600, UID: 1000},
			{Rel: "sessions", Mode: fs.ModeDir | 0o000, IsDir: true, UID: 1000, Err: "open: permission denied"},
			{Rel: "pki/gateway.crt", Mode: 0o644, UID: 0},
			{Rel: "sandbox/ws/file", Mode: 0o600, UID: 1001},
			{Rel: "logs/a.log", Mode: 0o711, UID: 1000},
		}},
		TrustedUIDs: []int{0},
	})
	require.True(t, r.Has("fs.synced_dir"), "%v", ids(r))
	f, _ := r.Find("fs.unreadable")
	require.Contains(t, f.Detail, "sessions")
	require.False(t, r.Has("fs.owner_mismatch"), "trusted uid and sandbox workspaces")
	require.False(t, r.Has("fs.pki_dir.perms_world_readable"), "certificates are public")
	f, _ = r.Find("fs.log_file.perms_wide")
	require.Equal(t, Info, f.Severity)
}

func TestSnapshotDirErrors(t *testing.T) {
	_, err := SnapshotDir(filepath.Join(t.TempDir(), "missing"))
	require.Error(t, err)
	p := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(p, nil, 0o600))
	_, err = SnapshotDir(p)
	require.ErrorContains(t, err, "not a directory")

	// A state dir that is itself a symlink is walked at its target.
	real := t.TempDir()
	writeFile(t, real, "moltbot.json", []byte("{}"), 0o600)
	link := filepath.Join(t.TempDir(), "state")
	require.NoError(t, os.Symlink(real, link))
	snap, err := SnapshotDir(link)
	require.NoError(t, err)
	var names []string
	for _, e := range snap.Entries {
		names = append(names, e.Rel)
		require.False(t, e.Escapes, e.Rel)
	}
	require.Contains(t, names, "moltbot.json")
}

// TestSnapshotSkipsWriterTemps: the temp files atomicfile makes while the
// security log rewrites its head are never findings, caught mid-write or
// gone before they are read (issue 14: fs.unreadable logs/.security.head<n>).
func TestSnapshotSkipsWriterTemps(t *testing.T) {
	root := filepath.Join(t.TempDir(), "state")
	mkdir(t, root, "logs", 0o700)
	// Left behind (a crash mid-write): private, so skipped; a hidden file of
	// that form with a wide mode is still judged.
	writeFile(t, root, "logs/.security.head4242", []byte("{}"), 0o600)
	writeFile(t, root, "logs/.notes77", []byte("x"), 0o644)
	snap, err := SnapshotDir(root)
	require.NoError(t, err)
	var rels []string
	for _, e := range snap.Entries {
		rels = append(rels, e.Rel)
	}
	require.NotContains(t, rels, "logs/.security.head4242")
	require.Contains(t, rels, "logs/.notes77")
	require.NoError(t, os.Remove(filepath.Join(root, "logs/.notes77")))

	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_ = atomicfile.WriteFile(filepath.Join(root, "logs", "security.head"), []byte(fmt.Sprintf(`{"seq":%d}`, i)), 0o600)
			_ = atomicfile.WriteFile(filepath.Join(root, "moltbot.json"), []byte(fmt.Sprintf(`{"version":%d}`, i)), 0o600)
		}
	}()
	defer func() { close(stop); <-done }()
	for range 300 {
		snap, err := SnapshotDir(root)
		require.NoError(t, err)
		for _, e := range snap.Entries {
			require.Empty(t, e.Err, "%s", e.Rel)
			require.False(t, atomicfile.IsTemp(path.Base(e.Rel)), "temp file reported: %s", e.Rel)
		}
	}
}
