//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFirstRun is issue 14's first run on the stack `make up` just made:
// the defaults score 100 with no warning, doctor has nothing to fix, and
// the README's "Connect Telegram" demo (compose profile demo, the fake Bot
// API) walks DM -> pairing code -> approve -> answer offline. It runs
// before TestJourney (file order) because it needs a fresh stack; it
// leaves telegram unconfigured and the fake stopped.
func TestFirstRun(t *testing.T) {
	steps := []struct {
		name string
		fn   func(*testing.T)
	}{
		{"the default config is written and scores 100", freshDefaults},
		{"doctor has nothing to fix", doctorClean},
		{"the Telegram demo: DM, code, approve, answer", telegramDemo},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.fn) {
			t.Fatalf("step %q failed; later steps depend on it", s.name)
		}
	}
}

func freshDefaults(t *testing.T) {
	for path, want := range map[string]string{
		"channels.local.dmPolicy":      "pairing",
		"channels.local.groupPolicy":   "allowlist",
		"agents.defaults.sandbox.mode": "non-main",
		"logging.redactSensitive":      "tools",
		"gateway.auth.mode":            "token",
	} {
		r := owner(t, "config", "get", path)
		if r.Code != 0 || strings.Trim(strings.TrimSpace(r.Out), `"`) != want {
			t.Fatalf("config get %s: want %s: %s", path, want, r)
		}
	}
	if r := owner(t, "config", "get", "gateway.auth.token"); r.Code == 0 {
		t.Fatalf("the default config has a token field (the gateway reads $CLAWDBOT_GATEWAY_TOKEN_FILE): %s", r)
	}
	for i := range 3 {
		r := owner(t, "security", "audit", "--deep", "--min-score", "100")
		if r.Code != 0 || !strings.Contains(r.Out, "0 critical, 0 warn") || strings.Contains(r.Out, "fix:") {
			t.Fatalf("audit %d on a fresh stack: want 100, no warning, no fix line: %s", i+1, r)
		}
	}
}

func doctorClean(t *testing.T) {
	r := owner(t, "doctor")
	if r.Code != 0 {
		t.Fatalf("doctor on a fresh stack: %s", r)
	}
	for _, l := range strings.Split(r.Out, "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && (f[0] == "WARN" || f[0] == "FAIL") || strings.Contains(l, "fix:") {
			t.Fatalf("doctor reports something to fix on a fresh stack: %q\n%s", l, r)
		}
	}
	// Through the services: the stack's config and key ring, not host files.
	for _, want := range []string{"stack config", "secrets key", "sandbox", "services"} {
		if !strings.Contains(r.Out, want) {
			t.Fatalf("doctor does not check %q through the gateway:\n%s", want, r.Out)
		}
	}
}

// The demo's bot token and the fake's control port (docker-compose.yml).
const demoBotToken = "123456:demo-bot-token"

func demoURL() string {
	p := os.Getenv("MOLTBOT_DEMO_PORT")
	if p == "" {
		p = "18781"
	}
	return "http://127.0.0.1:" + p
}

// ownerStdin runs the host CLI as the owner with stdin (a secret typed at `config set PATH -`).
func ownerStdin(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(repo, "bin", "moltbot"), args...)
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "MOLTBOT_STATE_DIR="+bundle(), "MOLTBOT_GATEWAY="+gatewayAddr(), "CLAWDBOT_GATEWAY_TOKEN=")
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{Out: out.String(), Err: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.Code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

// dm injects a private message into the fake, as the README's curl does.
func dm(t *testing.T, from int64, text string) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"from_id": from, "username": "ann", "text": text})
	resp, err := http.Post(demoURL()+"/_fake/dm", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatalf("inject DM: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("inject DM: %s: %s", resp.Status, body)
	}
}

// waitSent polls the fake for a bot message to chat after seq that
// contains want; it returns the message and its seq.
func waitSent(t *testing.T, chat string, after int, want func(string) bool) (string, int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		resp, err := http.Get(fmt.Sprintf("%s/_fake/sent?chat_id=%s&after=%d", demoURL(), chat, after))
		if err == nil {
			var msgs []struct {
				Seq  int    `json:"seq"`
				Text string `json:"text"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&msgs)
			resp.Body.Close()
			for _, m := range msgs {
				last = m.Text
				if want(m.Text) {
					return m.Text, m.Seq
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("the bot sent nothing matching to %s after %d (last: %q)", chat, after, last)
	return "", 0
}

func telegramDemo(t *testing.T) {
	if r := compose(t, "--profile", "demo", "up", "-d", "faketelegram"); r.Code != 0 {
		t.Fatalf("start the demo profile: %s", r)
	}
	t.Cleanup(func() {
		// Leave the stack as TestJourney expects it: no telegram, no fake.
		if r := owner(t, "config", "set", "channels.telegram", "--unset"); r.Code != 0 {
			t.Errorf("unset channels.telegram: %s", r)
		}
		if r := owner(t, "gateway", "restart"); r.Code != 0 {
			t.Errorf("gateway restart: %s", r)
		}
		if r := compose(t, "--profile", "demo", "rm", "-s", "-f", "faketelegram"); r.Code != 0 {
			t.Errorf("stop the demo: %s", r)
		}
	})
	// The README's commands, in its order.
	if r := owner(t, "config", "set", "channels.telegram.baseUrl", "http://faketelegram:8081"); r.Code != 0 {
		t.Fatalf("set baseUrl: %s", r)
	}
	if r := ownerStdin(t, demoBotToken+"\n", "config", "set", "channels.telegram.botToken", "-"); r.Code != 0 || !strings.Contains(r.Out, "encrypted") {
		t.Fatalf("set botToken: %s", r)
	}
	if r := owner(t, "config", "get", "channels.telegram.botToken"); strings.Contains(r.Out, demoBotToken) {
		t.Fatalf("the bot token is shown in clear: %s", r)
	}
	if r := owner(t, "gateway", "restart"); r.Code != 0 || !strings.Contains(r.Out, "channels.telegram") {
		t.Fatalf("gateway restart with telegram: %s", r)
	}
	const ann = 4242
	dm(t, ann, "hello")
	msg, seq := waitSent(t, "4242", 0, func(s string) bool { return codeRE.MatchString(s) })
	code := codeRE.FindString(msg)
	if r := owner(t, "pairing", "list"); !strings.Contains(r.Out, code) {
		t.Fatalf("pairing list does not show %s: %s", code, r)
	}
	if r := owner(t, "pairing", "approve", "telegram", code, "--owner"); r.Code != 0 {
		t.Fatalf("approve: %s", r)
	}
	_, seq = waitSent(t, "4242", seq, func(s string) bool { return strings.Contains(s, "approved") })
	dm(t, ann, "what is 2+2?")
	waitSent(t, "4242", seq, func(s string) bool { return strings.Contains(s, "what is 2+2?") })
	if r := owner(t, "status", "--all"); r.Code != 0 || !strings.Contains(r.Out, "telegram") {
		t.Fatalf("status --all with telegram: %s", r)
	}
}
