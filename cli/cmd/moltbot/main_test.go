package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/moltbot/moltbot-secure/cli/internal/clitest"
	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	"github.com/moltbot/moltbot-secure/services/auth"
)

// These tests run the BUILT moltbot binary, as a script would, against a
// real mTLS gateway (clitest: the real server bootstrap, authenticator,
// lockout limiter and role table around a stand-in Gateway service).

var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "moltbot-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "moltbot")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build moltbot: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// stack answers as a healthy gateway would.
type stack struct {
	gatewayv1.UnimplementedGatewayServer
	down string // a service reported down
}

func (s *stack) Status(context.Context, *gatewayv1.StatusRequest) (*gatewayv1.StatusResponse, error) {
	r := &gatewayv1.StatusResponse{}
	for _, n := range []string{"gateway", "secretsd", "pairingd", "sandboxd"} {
		svc := &gatewayv1.ServiceStatus{Name: n, Up: n != s.down}
		if !svc.GetUp() {
			svc.Error = "unreachable"
		}
		r.Services = append(r.Services, svc)
	}
	return r, nil
}

func (s *stack) GetConfig(_ context.Context, r *gatewayv1.GetConfigRequest) (*gatewayv1.GetConfigResponse, error) {
	if r.GetPath() == "nosuch" {
		return nil, status.Error(codes.NotFound, "/state/moltbot.json: nosuch is not set")
	}
	return &gatewayv1.GetConfigResponse{ValueJson: `{"botToken": "<encrypted>"}`}, nil
}

func (s *stack) RevealConfig(context.Context, *gatewayv1.RevealConfigRequest) (*gatewayv1.RevealConfigResponse, error) {
	return &gatewayv1.RevealConfigResponse{ValueJson: `"plain"`}, nil
}

// Send answers as the local channel's policy does: "owner" reaches the
// agent, anyone else gets a pairing code and is not delivered.
func (s *stack) Send(_ context.Context, r *gatewayv1.SendRequest) (*gatewayv1.SendResponse, error) {
	if r.GetFrom() == "owner" {
		return &gatewayv1.SendResponse{Replies: []string{"hello"}, ReachedAgent: true, SessionKey: "agent:main:main"}, nil
	}
	return &gatewayv1.SendResponse{
		Replies:  []string{"pairing code ABCD1234: moltbot pairing approve local ABCD1234"},
		Decision: "dm pairing: code sent",
	}, nil
}

// RetireKey refuses as the gateway does while k1 still seals something.
func (s *stack) RetireKey(_ context.Context, r *gatewayv1.RetireKeyRequest) (*gatewayv1.RetireKeyResponse, error) {
	if r.GetKid() == "k1" {
		return nil, status.Error(codes.FailedPrecondition, "key k1 still seals 2 value(s) (moltbot.json: channels.telegram.botToken; moltbot.json.backup): run `moltbot security rotate-key --rewrap` first, then retire it")
	}
	return &gatewayv1.RetireKeyResponse{RetiredKid: r.GetKid(), Checked: 3}, nil
}

var table = auth.Table{
	gatewayv1.Gateway_RetireKey_FullMethodName:    {auth.RoleOwner},
	gatewayv1.Gateway_Status_FullMethodName:       {auth.RoleOwner, auth.RoleClient},
	gatewayv1.Gateway_GetConfig_FullMethodName:    {auth.RoleOwner, auth.RoleClient},
	gatewayv1.Gateway_RevealConfig_FullMethodName: {auth.RoleOwner},
	gatewayv1.Gateway_Send_FullMethodName:         {auth.RoleOwner, auth.RoleClient},
}

type result struct {
	code        int
	out, errOut string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.code, r.out, r.errOut)
}

// run runs the binary with only env (plus PATH) and HOME set: nothing of
// the developer's own environment leaks in.
func run(t *testing.T, dir string, env map[string]string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	if cmd.Dir == "" {
		cmd.Dir = t.TempDir()
	}
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	if _, ok := env["HOME"]; !ok {
		cmd.Env = append(cmd.Env, "HOME="+t.TempDir())
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run moltbot: %v", err)
	}
	return result{code: cmd.ProcessState.ExitCode(), out: out.String(), errOut: errOut.String()}
}

// freeAddr is an address where nothing listens.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func TestExitCodes(t *testing.T) {
	healthy := clitest.StartGateway(t, &stack{}, table)
	degraded := clitest.StartGateway(t, &stack{down: "sandboxd"}, table)
	owner := healthy.StateDir(t, clitest.OwnerBundle)
	client := healthy.StateDir(t, clitest.ClientBundle)
	caOnly := healthy.StateDir(t, []string{"ca.pem"})
	const wrongToken = "wrong-token-0123456789abcdef0123456789abcdef"
	on := func(g *clitest.Gateway, state string, extra ...string) map[string]string {
		env := map[string]string{"MOLTBOT_STATE_DIR": state, "MOLTBOT_GATEWAY": g.Addr}
		for i := 0; i+1 < len(extra); i += 2 {
			env[extra[i]] = extra[i+1]
		}
		return env
	}
	down := map[string]string{"MOLTBOT_STATE_DIR": owner, "MOLTBOT_GATEWAY": freeAddr(t)}

	tests := []struct {
		name string
		env  map[string]string
		args []string
		code int
		want []string // in stdout+stderr
		not  []string
	}{
		// 0 ok
		{"version", nil, []string{"version"}, 0, nil, nil},
		{"status, all up", on(healthy, owner), []string{"status"}, 0, []string{"sandboxd"}, nil},
		{"message delivered", on(healthy, owner), []string{"message", "send", "--from", "owner", "hi"}, 0, []string{"hello"}, nil},
		{"config get shows <encrypted> unescaped", on(healthy, client), []string{"--json", "config", "get", "channels.telegram"}, 0,
			[]string{`"<encrypted>"`}, []string{`\u003c`}},
		{"completion bash", nil, []string{"completion", "bash"}, 0, []string{"moltbot"}, nil},
		{"help on a subcommand", nil, []string{"help", "config", "get"}, 0, []string{"moltbot config get"}, nil},
		{"completion zsh", nil, []string{"completion", "zsh"}, 0, []string{"#compdef moltbot"}, nil},
		{"completion fish", nil, []string{"completion", "fish"}, 0, []string{"complete -c moltbot"}, nil},
		{"retire an unused key", on(healthy, owner), []string{"security", "rotate-key", "--retire", "k2"}, 0, []string{"retired key k2"}, nil},
		// 1 error
		{"not found", on(healthy, client), []string{"config", "get", "nosuch"}, 1, []string{"nosuch is not set"}, nil},
		{"retire a key still in use", on(healthy, owner), []string{"security", "rotate-key", "--retire", "k1"}, 1,
			[]string{"key k1 still seals 2 value(s)", "rotate-key --rewrap"}, nil},
		// 2 usage
		{"unknown command", nil, []string{"frobnicate"}, 2, []string{`unknown command "frobnicate"`}, nil},
		{"unknown subcommand", nil, []string{"config", "nosuch"}, 2, []string{`unknown command "nosuch" for "moltbot config"`}, nil},
		{"help on an unknown topic", nil, []string{"help", "nosuch"}, 2, []string{`unknown help topic "nosuch"`}, nil},
		{"help on an unknown subtopic", nil, []string{"help", "config", "nosuch"}, 2, []string{`unknown help topic "config nosuch"`}, nil},
		{"too many arguments", nil, []string{"config", "get", "a", "b"}, 2, []string{"accepts at most 1 arg"}, nil},
		{"unknown flag", nil, []string{"status", "--bogus"}, 2, []string{"unknown flag: --bogus"}, nil},
		{"--json with --sarif", nil, []string{"--json", "security", "audit", "--sarif"}, 2, []string{"pick one"}, nil},
		{"--min-score out of range", nil, []string{"security", "audit", "--min-score", "200"}, 2, []string{"0-100"}, nil},
		{"completion for an unknown shell", nil, []string{"completion", "tcsh"}, 2, []string{"invalid argument"}, nil},
		// 3 down or below a bar
		{"status, a service down", on(degraded, degraded.StateDir(t, clitest.OwnerBundle)), []string{"status"}, 3, []string{"sandboxd", "DOWN"}, nil},
		{"status, stack not running", down, []string{"status"}, 3,
			[]string{"DOWN", "the stack is not running (nothing answers at " + down["MOLTBOT_GATEWAY"] + ")", "make up"}, nil},
		{"a call, stack not running", down, []string{"config", "get", "x"}, 3, []string{"the stack is not running", "make up"}, nil},
		// 4 refused
		{"token rejected", on(healthy, caOnly, "CLAWDBOT_GATEWAY_TOKEN", wrongToken), []string{"config", "get", "x"}, 4,
			[]string{"rejected the token from $CLAWDBOT_GATEWAY_TOKEN", "invalid token"}, []string{wrongToken}},
		{"status, token rejected", on(healthy, caOnly, "CLAWDBOT_GATEWAY_TOKEN", wrongToken), []string{"status"}, 4,
			[]string{"REFUSED"}, []string{"DOWN", wrongToken}},
		{"owner only", on(healthy, client), []string{"config", "get", "x", "--reveal"}, 4,
			[]string{"refused: owner only: RevealConfig", "cli.pem, cli-key.pem, cli.token"}, nil},
		{"retire is owner only", on(healthy, client), []string{"security", "rotate-key", "--retire", "k2"}, 4,
			[]string{"refused: owner only: RetireKey"}, nil},
		// 5 not delivered
		{"message not delivered", on(healthy, client), []string{"message", "send", "--from", "mallory", "hi"}, 5,
			[]string{"not delivered to the agent: dm pairing: code sent", "moltbot pairing approve local <code>"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, "", tc.env, tc.args...)
			require.Equal(t, tc.code, r.code, r.String())
			all := r.out + r.errOut
			for _, w := range tc.want {
				require.Contains(t, all, w, r.String())
			}
			for _, n := range tc.not {
				require.NotContains(t, all, n, r.String())
			}
			require.NotContains(t, all, "rpc error", r.String())
			if tc.code != 0 {
				require.NotContains(t, all, "Usage:", "a failure prints no help: %s", r)
			}
		})
	}
}

// TestLockedOut: after the limiter's 10 failures the 11th call is locked
// out, exit 4, and says when to retry.
func TestLockedOut(t *testing.T) {
	g := clitest.StartGateway(t, &stack{}, table)
	env := map[string]string{"MOLTBOT_STATE_DIR": g.StateDir(t, []string{"ca.pem"}), "MOLTBOT_GATEWAY": g.Addr,
		"CLAWDBOT_GATEWAY_TOKEN": "wrong-token-0123456789abcdef0123456789abcdef"}
	var r result
	for i := 0; i < 12; i++ {
		r = run(t, "", env, "--json", "config", "get", "x")
		require.Equal(t, 4, r.code, r.String())
	}
	var e struct {
		Error      string `json:"error"`
		Kind       string `json:"kind"`
		Exit       int    `json:"exit"`
		Fix        string `json:"fix"`
		RetryAfter int    `json:"retry_after_s"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.errOut), &e), r.String())
	require.Equal(t, "locked_out", e.Kind, r.String())
	require.Equal(t, 4, e.Exit)
	require.Contains(t, e.Error, "retry after")
	require.Positive(t, e.RetryAfter)
	require.Contains(t, e.Fix, "wait")
	require.NotContains(t, r.errOut, "rpc error")

	r = run(t, "", env, "status")
	require.Equal(t, 4, r.code, r.String())
	require.Contains(t, r.out, "LOCKED OUT", r.String())

	// status --json: one document on stdout naming the state, nothing more.
	r = run(t, "", env, "--json", "status")
	require.Equal(t, 4, r.code, r.String())
	var st struct {
		Services []struct {
			Name, State, Error, Fix string
			Up                      bool
		}
	}
	require.NoError(t, json.Unmarshal([]byte(r.out+r.errOut), &st), r.String())
	require.Equal(t, "locked_out", st.Services[0].State)
	require.Contains(t, st.Services[0].Fix, "wait")
}

// TestJSONErrors: with --json every failure is one JSON object on stderr
// naming the kind, the exit code and the fix.
func TestJSONErrors(t *testing.T) {
	g := clitest.StartGateway(t, &stack{}, table)
	ca := g.StateDir(t, []string{"ca.pem"})
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		kind string
		exit int
		fix  string
	}{
		{"usage", nil, []string{"--json", "config", "nosuch"}, "usage", 2, ""},
		{"down", map[string]string{"MOLTBOT_STATE_DIR": ca, "MOLTBOT_GATEWAY": freeAddr(t), "CLAWDBOT_GATEWAY_TOKEN": "x"},
			[]string{"--json", "config", "get", "x"}, "down", 3, "make up"},
		{"unauthenticated", map[string]string{"MOLTBOT_STATE_DIR": ca, "MOLTBOT_GATEWAY": g.Addr, "CLAWDBOT_GATEWAY_TOKEN": "not-the-token"},
			[]string{"--json", "config", "get", "x"}, "unauthenticated", 4, "CLAWDBOT_GATEWAY_TOKEN"},
		{"owner only", map[string]string{"MOLTBOT_STATE_DIR": g.StateDir(t, clitest.ClientBundle), "MOLTBOT_GATEWAY": g.Addr},
			[]string{"--json", "config", "get", "x", "--reveal"}, "permission_denied", 4, "cli.pem"},
		{"undelivered", map[string]string{"MOLTBOT_STATE_DIR": g.StateDir(t, clitest.ClientBundle), "MOLTBOT_GATEWAY": g.Addr},
			[]string{"--json", "message", "send", "--from", "eve", "hi"}, "undelivered", 5, "pairing approve"},
		{"no bundle", map[string]string{"MOLTBOT_STATE_DIR": t.TempDir()}, []string{"--json", "config", "get", "x"}, "no_bundle", 1, "make up"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, "", tc.env, tc.args...)
			require.Equal(t, tc.exit, r.code, r.String())
			var e map[string]any
			require.NoError(t, json.Unmarshal([]byte(r.errOut), &e), "stderr is one JSON object: %s", r)
			require.Equal(t, tc.kind, e["kind"], r.String())
			require.EqualValues(t, tc.exit, e["exit"], r.String())
			require.NotEmpty(t, e["error"])
			if tc.fix != "" {
				require.Contains(t, e["fix"], tc.fix, r.String())
			}
			require.NotContains(t, r.errOut, "rpc error")
		})
	}
}

// TestFindsTheStack: without MOLTBOT_STATE_DIR or MOLTBOT_GATEWAY the CLI
// finds the bundle in ./.moltbot (from anywhere in the checkout) or
// through the pointer `make up` writes, and the gateway address with it.
func TestFindsTheStack(t *testing.T) {
	g := clitest.StartGateway(t, &stack{}, table)
	repo := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(repo, ".git"), 0o700))
	sub := filepath.Join(repo, "services", "x")
	require.NoError(t, os.MkdirAll(sub, 0o700))
	bundle := filepath.Join(repo, ".moltbot")
	require.NoError(t, os.Rename(g.StateDir(t, clitest.OwnerBundle), bundle))
	home := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(home, ".moltbot"), 0o700))
	ptr, err := json.Marshal(map[string]string{"bundle_dir": bundle, "gateway": g.Addr})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(home, ".moltbot", "stack.json"), ptr, 0o600))
	elsewhere := t.TempDir()

	for _, tc := range []struct {
		name string
		dir  string
		env  map[string]string
		code int
		want string
	}{
		{"from the repo root", repo, map[string]string{"HOME": home}, 0, ""},
		{"from a sub-directory", sub, map[string]string{"HOME": home}, 0, ""},
		{"from elsewhere, through the pointer", elsewhere, map[string]string{"HOME": home}, 0, ""},
		{"$MOLTBOT_STATE_DIR wins", repo, map[string]string{"HOME": home, "MOLTBOT_STATE_DIR": elsewhere}, 1, "no client bundle at " + elsewhere},
		{"--state-dir wins", repo, map[string]string{"HOME": home}, 1, "no client bundle at " + elsewhere},
		{"no pointer, outside the checkout", elsewhere, map[string]string{"HOME": t.TempDir()}, 1, "make up"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"status"}
			if strings.HasPrefix(tc.name, "--state-dir") {
				args = append(args, "--state-dir", elsewhere)
			}
			r := run(t, tc.dir, tc.env, args...)
			require.Equal(t, tc.code, r.code, r.String())
			require.Contains(t, r.out+r.errOut, tc.want, r.String())
		})
	}

	t.Run("certs init refuses a second CA while the stack runs", func(t *testing.T) {
		own := filepath.Join(t.TempDir(), "state")
		r := run(t, elsewhere, map[string]string{"HOME": home}, "certs", "init", "--state-dir", own)
		require.Equal(t, 1, r.code, r.String())
		require.Contains(t, r.errOut, "a stack with another CA is running at "+g.Addr, r.String())
		require.Contains(t, r.errOut, "--state-dir "+bundle, r.String())
		_, err := os.Stat(filepath.Join(own, "pki", "ca.pem"))
		require.ErrorIs(t, err, os.ErrNotExist, "no CA was made")
	})
	t.Run("certs init makes a CA when nothing runs", func(t *testing.T) {
		own := filepath.Join(t.TempDir(), "state")
		r := run(t, elsewhere, map[string]string{"HOME": t.TempDir(), "MOLTBOT_GATEWAY": freeAddr(t)}, "certs", "init", "--state-dir", own)
		require.Equal(t, 0, r.code, r.String())
		_, err := os.Stat(filepath.Join(own, "pki", "ca.pem"))
		require.NoError(t, err)
	})
}
