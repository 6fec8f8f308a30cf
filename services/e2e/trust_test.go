//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A client holding only the CA and the gateway token (what the seed says to
// hand to every app) is refused every owner method, with a sentence that
// names the owner's bundle, and never an "rpc error:" text.
func clientRefusedOwnerMethods(t *testing.T) {
	dir := clientDir(t)
	pass := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(pass, []byte("a passphrase long enough\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := client(t, dir, "status"); r.Code != 0 {
		t.Fatalf("a client may read status: %s", r)
	}
	for _, args := range [][]string{
		{"config", "set", "agents.defaults.sandbox.mode", "off"},
		{"config", "set", "channels.local.dm.allowFrom", `["mallory"]`},
		{"config", "get", "gateway.auth.token", "--reveal"},
		{"gateway", "restart"},
		{"security", "audit", "--fix"},
		{"security", "rotate-key"},
		{"security", "migrate"},
		{"security", "log"},
		{"rollback"},
		{"rollback", "--list"},
		{"certs", "rotate"},
		{"pairing", "approve", "local", "ABCDEFGH"},
		{"pairing", "reject", "local", "ABCDEFGH"},
		{"pairing", "revoke", "local", "mallory"},
		{"sandbox", "prune"},
		{"sandbox", "recreate", "--all"},
		{"security", "key", "export", "--out", filepath.Join(t.TempDir(), "k.age"), "--passphrase-file", pass},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := client(t, dir, args...)
			if r.Code == 0 {
				t.Fatalf("a client-role CLI ran an owner method: %s", r)
			}
			all := r.Out + r.Err
			if strings.Contains(all, "rpc error:") {
				t.Errorf("raw gRPC text reached the operator: %s", r)
			}
			if !strings.Contains(strings.ToLower(all), "owner") {
				t.Errorf("the refusal does not say the method is owner only: %s", r)
			}
		})
	}
	// Nothing changed: the owner still sees the sandbox on.
	if r := owner(t, "config", "get", "agents.defaults.sandbox.mode"); strings.Contains(r.Out, "off") {
		t.Fatalf("a refused client changed the config: %s", r)
	}
}

// A value nested 50,000 deep is refused with a clear error naming the
// limit, quickly, and the gateway keeps serving.
func deepValueRefused(t *testing.T) {
	deep := strings.Repeat("[", 50000) + strings.Repeat("]", 50000)
	start := time.Now()
	r := owner(t, "config", "set", "agents.list", deep)
	took := time.Since(start)
	if r.Code == 0 {
		t.Fatalf("a 50,000-deep value was accepted: %s", r)
	}
	if !strings.Contains(r.Err, "64") {
		t.Errorf("the error does not name the depth limit (64): %s", r)
	}
	t.Logf("refused in %v: %s", took, strings.TrimSpace(r.Err))
	if r := owner(t, "status"); r.Code != 0 {
		t.Fatalf("the gateway stopped serving after a deep value: %s", r)
	}
}

// Rotating the shared gateway token never locks out the owner, on the host
// or through `compose run cli`; the old token stops working for clients.
func tokenRotationKeepsOwner(t *testing.T) {
	oldClient := clientDir(t)
	tok := strings.TrimSpace(owner(t, "token", "generate").Out)
	if len(tok) < 32 {
		t.Fatalf("token generate: %q", tok)
	}
	if r := owner(t, "config", "set", "gateway.auth.token", tok); r.Code != 0 {
		t.Fatalf("config set token: %s", r)
	}
	if r := owner(t, "gateway", "restart"); r.Code != 0 {
		t.Fatalf("gateway restart: %s", r)
	}
	if r := owner(t, "status"); r.Code != 0 {
		t.Fatalf("the owner CLI lost access after a token rotation: %s", r)
	}
	if r := compose(t, "run", "--rm", "-T", "cli", "status"); r.Code != 0 {
		t.Fatalf("`compose run cli status` broke after a token rotation: %s", r)
	}
	if r := client(t, oldClient, "status"); r.Code == 0 {
		t.Fatalf("the rotated-out token still works: %s", r)
	}
	d := t.TempDir()
	if err := os.MkdirAll(filepath.Join(d, "pki"), 0o700); err != nil {
		t.Fatal(err)
	}
	ca, _ := os.ReadFile(filepath.Join(oldClient, "pki", "ca.pem"))
	_ = os.WriteFile(filepath.Join(d, "pki", "ca.pem"), ca, 0o600)
	_ = os.WriteFile(filepath.Join(d, "pki", "gateway-auth.token"), []byte(tok+"\n"), 0o600)
	if r := client(t, d, "status"); r.Code != 0 {
		t.Fatalf("a client with the new token is refused: %s", r)
	}
}

// A rewritten security-log line (chain recomputed without the key) and a
// cut tail both fail `security log --verify`, naming the line; a restart
// does not launder the tampered log. Files are edited in place (same inode,
// as the gateway's appends continue) through a helper container, as an
// intruder with write access to the volume would.
func securityLogTamper(t *testing.T) {
	if r := owner(t, "security", "log", "--verify"); r.Code != 0 {
		t.Fatalf("the log does not verify before tampering: %s", r)
	}
	vol := volumeAt(t, "gateway", "/state")
	const log = "/v/logs/security.jsonl"
	if r := inVolume(t, vol, `cp -p `+log+` /v/logs/e2e.orig`); r.Code != 0 {
		t.Fatalf("copy log: %s", r)
	}
	// Rewrite line 1's kind and recompute an unkeyed digest for it.
	rewrite := `sed '1s/"kind":"[^"]*"/"kind":"auth.forged"/' /v/logs/e2e.orig > /v/logs/e2e.tmp && cat /v/logs/e2e.tmp > ` + log
	if r := inVolume(t, vol, rewrite); r.Code != 0 {
		t.Fatalf("rewrite: %s", r)
	}
	r := owner(t, "security", "log", "--verify")
	if r.Code != 3 || !strings.Contains(r.Err, "security log line 1:") {
		t.Fatalf("a rewritten line verified, or the line is not named: %s", r)
	}
	// Put the original bytes back (and what the gateway appended since):
	// the chain verifies again, so the next failure is the cut's alone.
	restore := `n=$(wc -l < /v/logs/e2e.orig); { cat /v/logs/e2e.orig; tail -n +$((n+1)) ` + log + `; } > /v/logs/e2e.tmp && cat /v/logs/e2e.tmp > ` + log
	if r := inVolume(t, vol, restore); r.Code != 0 {
		t.Fatalf("restore: %s", r)
	}
	if r := owner(t, "security", "log", "--verify"); r.Code != 0 {
		t.Fatalf("the restored log does not verify: %s", r)
	}
	// Cut the tail.
	cut := `n=$(wc -l < ` + log + `); head -n $((n-2)) ` + log + ` > /v/logs/e2e.tmp && cat /v/logs/e2e.tmp > ` + log + ` && rm /v/logs/e2e.tmp /v/logs/e2e.orig`
	if r := inVolume(t, vol, cut); r.Code != 0 {
		t.Fatalf("cut: %s", r)
	}
	if r := owner(t, "security", "log", "--verify"); r.Code != 3 {
		t.Fatalf("a cut tail verified: %s", r)
	}
	// A restart keeps the evidence aside and verify keeps failing on it.
	if r := compose(t, "restart", "gateway"); r.Code != 0 {
		t.Fatalf("restart gateway: %s", r)
	}
	waitHealthy(t)
	r = owner(t, "security", "log", "--verify")
	if r.Code != 3 || !strings.Contains(r.Err, "unverified-") {
		t.Fatalf("a restart laundered the tampered log: %s", r)
	}
}

// /exec from an approved DM stranger and from the owner's own main session
// both run in sandboxd's containers: the output holds none of the stack's
// tokens or key bytes, and no listing of its PKI or state.
func execReadsNoSecrets(t *testing.T) {
	if r := owner(t, "config", "set", "channels.local.owner", `["olive"]`); r.Code != 0 {
		t.Fatalf("name the local owner: %s", r)
	}
	if r := owner(t, "gateway", "restart"); r.Code != 0 {
		t.Fatalf("gateway restart: %s", r)
	}
	code := pairLocal(t, "eve")
	if r := owner(t, "pairing", "approve", "local", code); r.Code != 0 {
		t.Fatalf("approve eve: %s", r)
	}
	pki := volumeAt(t, "gateway", "/pki")
	secretsState := volumeAt(t, "secretsd", "/state")
	var known []string
	for _, f := range []string{"gateway.token", "cli.token", "secretsd.token", "gateway-auth.token", "gateway-key.pem"} {
		r := inVolume(t, pki, "cat /v/"+f)
		if r.Code != 0 {
			t.Fatalf("read %s: %s", f, r)
		}
		known = append(known, secretLines(r.Out)...)
	}
	r := inVolume(t, secretsState, "cat /v/keys/secrets.key | base64 -w0; echo; cat /v/keys/secrets.key")
	if r.Code != 0 {
		t.Fatalf("read key: %s", r)
	}
	known = append(known, secretLines(r.Out)...)

	probe := "/exec cat /pki/gateway.token /pki/cli.token /state/keys/secrets.key /secret-files/* 2>&1; ls -la / /pki /state 2>&1; id"
	for _, sender := range []string{"eve", "olive"} {
		r := owner(t, "message", "send", "--channel", "local", "--from", sender, probe)
		t.Logf("%s: %s", sender, r.Out)
		if !strings.Contains(r.Out, "uid=") {
			t.Fatalf("%s's /exec did not run: %s", sender, r)
		}
		if strings.Contains(r.Out, "not sandboxed") {
			t.Fatalf("%s's /exec ran outside a sandbox: %s", sender, r)
		}
		for _, k := range known {
			if strings.Contains(r.Out, k) {
				t.Fatalf("%s's /exec printed a secret of the stack (%d bytes)", sender, len(k))
			}
		}
		// The reply quotes the command first ("$ cat ..."); only what ran counts.
		ran := r.Out
		if i := strings.Index(ran, "$ "+strings.TrimPrefix(probe, "/exec ")); i >= 0 {
			ran = ran[i+len(probe):]
		}
		for _, name := range []string{"gateway-key.pem", "digests.json", "secrets.key", "moltbot.json"} {
			if strings.Contains(ran, name) && !strings.Contains(ran, name+": No such file") {
				t.Fatalf("%s's /exec listed %s", sender, name)
			}
		}
	}
}

// secretLines returns the non-trivial lines of a secret file (PEM body
// lines, tokens), each long enough that finding it in output is no accident.
func secretLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		if len(l) >= 24 && !strings.HasPrefix(l, "-----") {
			out = append(out, l)
		}
	}
	return out
}
