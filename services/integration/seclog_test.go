//go:build integration

package integration

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/seclog"
	"github.com/moltbot/moltbot-secure/services/testharness"
)

// Issue 12 item 6 on the real images: the security log is keyed with a key
// secretsd seals, so whoever can write the gateway's log volume (but
// cannot use secretsd) cannot rewrite a line, recompute the chain, cut the
// tail or rewrite the head without `security log --verify` failing (exit
// 3, naming the first bad line) or, while the gateway was down, the next
// start keeping the log aside and saying so.
func TestSecurityLogTamperEvident(t *testing.T) {
	st := testharness.Start(t, testharness.Options{})
	bin := moltbotBinary(t)
	tok, err := st.GatewayToken()
	require.NoError(t, err)
	bundle, err := st.ExportClientBundle(t.TempDir())
	require.NoError(t, err)
	cli := func(t *testing.T, args ...string) cliResult {
		t.Helper()
		ctx := ctxFor(t, time.Minute)
		addr, err := st.Addr(ctx, testharness.Gateway)
		require.NoError(t, err)
		return runMoltbot(ctx, t, bin, []string{"MOLTBOT_STATE_DIR=" + bundle, "MOLTBOT_GATEWAY=" + addr, "CLAWDBOT_GATEWAY_TOKEN=" + tok}, args...)
	}
	logDir := filepath.Join(st.StateDir(testharness.Gateway), "logs")
	logPath, headPath := filepath.Join(logDir, seclog.LogFile), filepath.Join(logDir, seclog.HeadFile)

	// Decisions, each recorded by the layer that made it.
	gw := st.AdminGateway(t)
	codeFor := func(t *testing.T, from string) string {
		t.Helper()
		r, err := gw.Send(ctxFor(t, 30*time.Second), &gatewayv1.SendRequest{Channel: "local", From: from, Text: "hi"})
		require.NoError(t, err)
		require.NotEmpty(t, r.GetReplies())
		return codeIn(t, r.GetReplies()[0])
	}
	approved, rejected := codeFor(t, "alice"), codeFor(t, "mallory")
	for _, args := range [][]string{
		{"config", "set", "agents.defaults.sandbox.mode", "all"},
		{"config", "get", "--reveal"},
		{"gateway", "restart"},
		{"pairing", "approve", "local", approved, "--no-notify"},
		{"pairing", "reject", "local", rejected},
		{"pairing", "revoke", "local", "alice"},
	} {
		r := cli(t, args...)
		require.Equalf(t, 0, r.code, "%v: %s", args, r.out)
	}
	r := cli(t, "security", "log", "--verify", "--json")
	require.Equalf(t, 0, r.code, "%s", problemLines(r.out))
	require.Contains(t, r.out, "the chain is intact")
	type rec struct {
		Kind   string            `json:"kind"`
		Actor  string            `json:"actor"`
		Target string            `json:"target"`
		Fields map[string]string `json:"fields"`
	}
	var got []rec
	for _, ln := range strings.Split(r.out, "\n") {
		var x rec
		if json.Unmarshal([]byte(ln), &x) == nil && x.Kind != "" && !strings.HasPrefix(x.Kind, "auth.") && !strings.HasPrefix(x.Kind, "message.") {
			got = append(got, x)
		}
	}
	require.Equal(t, []rec{
		{Kind: "config.set", Actor: auth.RoleOwner, Target: "agents.defaults.sandbox.mode", Fields: map[string]string{"encrypted": "false"}},
		{Kind: "config.reveal", Actor: auth.RoleOwner, Target: "(whole config)"},
		{Kind: "config.reload", Actor: auth.RoleOwner, Target: "/state/moltbot.json"},
		{Kind: "pairing.approve", Actor: auth.RoleOwner, Target: "local:alice", Fields: map[string]string{"notify": "skipped"}},
		{Kind: "pairing.reject", Actor: auth.RoleOwner, Target: "local:mallory"},
		{Kind: "pairing.revoke", Actor: auth.RoleOwner, Target: "local:alice"},
	}, got, "each decision once, in order")
	require.NotContains(t, r.out, tok, "never a secret")
	require.NotContains(t, r.out, approved, "never a pairing code")

	// The key is on disk only as secretsd's envelope.
	key, err := os.ReadFile(filepath.Join(logDir, "security.key"))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(key), `{"$enc":"v1"`), "an envelope, not the key: %.40q", key)
	fi, err := os.Stat(filepath.Join(logDir, "security.key"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	// tamper writes a changed log (and head), and afterwards puts back the
	// original plus whatever the gateway appended meanwhile.
	tamper := func(t *testing.T, edit func(lines []string) []string, head []byte) {
		t.Helper()
		origLog, err := os.ReadFile(logPath)
		require.NoError(t, err)
		origHead, err := os.ReadFile(headPath)
		require.NoError(t, err)
		lines := strings.SplitAfter(strings.TrimSuffix(string(origLog), "\n"), "\n")
		for i := range lines {
			lines[i] = strings.TrimSuffix(lines[i], "\n")
		}
		changed := strings.Join(edit(lines), "\n") + "\n"
		require.NoError(t, os.WriteFile(logPath, []byte(changed), 0o600))
		if head != nil {
			require.NoError(t, os.WriteFile(headPath, head, 0o600))
		}
		t.Cleanup(func() {
			cur, err := os.ReadFile(logPath)
			require.NoError(t, err)
			tail := ""
			if len(cur) > len(changed) {
				tail = string(cur[len(changed):])
			}
			require.NoError(t, os.WriteFile(logPath, append(append([]byte{}, origLog...), tail...), 0o600))
			// An older head is fine: lines past it are checked by their MACs.
			require.NoError(t, os.WriteFile(headPath, origHead, 0o600))
		})
	}
	lineOf := func(t *testing.T, lines []string, kind string) int {
		for i, l := range lines {
			if strings.Contains(l, `"kind":"`+kind+`"`) {
				return i
			}
		}
		t.Fatalf("no %s line", kind)
		return -1
	}
	requireFails := func(t *testing.T, want string) {
		t.Helper()
		r := cli(t, "security", "log", "--verify")
		require.Equalf(t, 3, r.code, "%s", problemLines(r.out))
		require.Contains(t, r.out, want, problemLines(r.out))
	}

	t.Run("rewritten line, unkeyed chain recomputed from it", func(t *testing.T) {
		var k int
		tamper(t, func(lines []string) []string {
			k = lineOf(t, lines, "config.set")
			lines[k] = strings.Replace(lines[k], "agents.defaults.sandbox.mode", "agents.defaults.model", 1)
			return recomputeSHA256(t, lines, k)
		}, nil)
		requireFails(t, fmt.Sprintf("security log line %d: no MAC", k+1))
	})
	t.Run("whole log and head forged under a key of the attacker's", func(t *testing.T) {
		forged := t.TempDir()
		own := make([]byte, seclog.KeySize)
		_, _ = rand.Read(own)
		l, err := seclog.Open(forged, own)
		require.NoError(t, err)
		var head []byte
		tamper(t, func(lines []string) []string {
			for range lines {
				require.NoError(t, l.Record(seclog.Event{Kind: "auth.success", Actor: "cli"}))
			}
			require.NoError(t, l.Close())
			b, err := os.ReadFile(filepath.Join(forged, seclog.LogFile))
			require.NoError(t, err)
			head, err = os.ReadFile(filepath.Join(forged, seclog.HeadFile))
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(headPath, head, 0o600))
			return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		}, nil)
		requireFails(t, "security log line 1: MAC does not match")
	})
	t.Run("removed line", func(t *testing.T) {
		var k int
		tamper(t, func(lines []string) []string {
			k = lineOf(t, lines, "config.reveal")
			return append(append([]string{}, lines[:k]...), lines[k+1:]...)
		}, nil)
		requireFails(t, fmt.Sprintf("security log line %d:", k+1))
	})
	t.Run("cut tail", func(t *testing.T) {
		var kept int
		tamper(t, func(lines []string) []string {
			kept = lineOf(t, lines, "config.reveal") // config.reveal and all after it go
			return lines[:kept]
		}, nil)
		requireFails(t, fmt.Sprintf("security log line %d:", kept+1))
	})
	r = cli(t, "security", "log", "--verify")
	require.Equalf(t, 0, r.code, "restored: %s", problemLines(r.out))

	// The key is unsealed again at start: a restart continues the chain.
	ctx := ctxFor(t, 2*time.Minute)
	before := countLines(t, logPath)
	require.NoError(t, st.Restart(ctx, testharness.Gateway))
	r = cli(t, "security", "log", "--verify")
	require.Equalf(t, 0, r.code, "after restart: %s", problemLines(r.out))
	require.NotContains(t, r.out, "log.archived")
	require.Greater(t, countLines(t, logPath), before)

	// Cut the tail and rewrite the head while the gateway is down, from
	// what the file shows: the hash is the next line's "prev", but the
	// head's own MAC needs the key. The next start keeps the log aside.
	require.NoError(t, st.Stop(ctx, testharness.Gateway, 5*time.Second))
	b, err := os.ReadFile(logPath)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	keep := lineOf(t, lines, "config.reload")
	var next struct {
		Prev string `json:"prev"`
	}
	require.NoError(t, json.Unmarshal([]byte(lines[keep]), &next))
	tampered := strings.Join(lines[:keep], "\n") + "\n"
	require.NoError(t, os.WriteFile(logPath, []byte(tampered), 0o600))
	fake := sha256.Sum256([]byte("guess"))
	require.NoError(t, os.WriteFile(headPath, []byte(fmt.Sprintf(`{"seq":%d,"hash":%q,"mac":%q}`, keep, next.Prev, hex.EncodeToString(fake[:]))), 0o600))
	require.NoError(t, st.StartAgain(ctx, testharness.Gateway))

	// The new chain is sound, but the history is not: verify keeps failing,
	// naming the archived log, so a restart never launders a tampered log.
	r = cli(t, "security", "log", "--verify")
	require.Equalf(t, 3, r.code, "%s", problemLines(r.out))
	require.Regexp(t, regexp.MustCompile(`warning: the log before line 1 did not verify .* head file MAC does not match`), r.out)
	require.Regexp(t, regexp.MustCompile(`verify failed: security log line 1: the log before this chain did not verify when the gateway started and is kept as logs/security\.jsonl\.unverified-`), r.out)
	archived := regexp.MustCompile(`logs/(security\.jsonl\.unverified-[0-9TZ]+)`).FindStringSubmatch(r.out)
	require.NotNil(t, archived, r.out)
	kept, err := os.ReadFile(filepath.Join(logDir, archived[1]))
	require.NoError(t, err)
	require.Equal(t, tampered, string(kept), "the evidence is kept as it was found")
}

// recomputeSHA256 rewrites lines from k on as the old, unkeyed format did:
// no MAC, prev = SHA-256 of the previous line.
func recomputeSHA256(t *testing.T, lines []string, k int) []string {
	t.Helper()
	prev := ""
	if k > 0 {
		s := sha256.Sum256([]byte(lines[k-1]))
		prev = hex.EncodeToString(s[:])
	}
	for i := k; i < len(lines); i++ {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(lines[i]), &m))
		delete(m, "mac")
		m["prev"] = prev
		b, err := json.Marshal(m)
		require.NoError(t, err)
		lines[i] = string(b)
		s := sha256.Sum256(b)
		prev = hex.EncodeToString(s[:])
	}
	return lines
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return strings.Count(string(b), "\n")
}

// A state dir from an older version holds an unkeyed log: the first keyed
// start keeps it, readable, beside the new chain, and never verifies it.
func TestSecurityLogUpgradeFromUnkeyed(t *testing.T) {
	old := recomputeSHA256(t, []string{
		`{"seq":1,"ts":"2026-11-30T10:00:00Z","kind":"auth.success","actor":"cli","prev":""}`,
		`{"seq":2,"ts":"2026-11-30T10:00:01Z","kind":"config.set","actor":"cli","target":"gateway.bind","prev":""}`,
	}, 0)
	oldLog := strings.Join(old, "\n") + "\n"
	st := testharness.Start(t, testharness.Options{Service: map[string]testharness.ServiceOptions{
		testharness.Gateway: {StateFiles: map[string][]byte{"logs/" + seclog.LogFile: []byte(oldLog)}},
	}})
	tok, err := st.GatewayToken()
	require.NoError(t, err)
	bundle, err := st.ExportClientBundle(t.TempDir())
	require.NoError(t, err)
	ctx := ctxFor(t, time.Minute)
	addr, err := st.Addr(ctx, testharness.Gateway)
	require.NoError(t, err)
	r := runMoltbot(ctx, t, moltbotBinary(t), []string{"MOLTBOT_STATE_DIR=" + bundle, "MOLTBOT_GATEWAY=" + addr, "CLAWDBOT_GATEWAY_TOKEN=" + tok}, "security", "log", "--verify")
	require.Equalf(t, 0, r.code, "%s", problemLines(r.out))
	require.Contains(t, r.out, "written unkeyed by an older version")
	require.NotContains(t, r.out, "gateway.bind", "old lines are not shown as verified")
	m := regexp.MustCompile(`logs/(security\.jsonl\.unkeyed-[0-9TZ]+)`).FindStringSubmatch(r.out)
	require.NotNil(t, m, r.out)
	kept, err := os.ReadFile(filepath.Join(st.StateDir(testharness.Gateway), "logs", m[1]))
	require.NoError(t, err)
	require.Equal(t, oldLog, string(kept))
}
