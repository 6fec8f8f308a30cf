//go:build integration

package integration

import (
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	pairingv1 "github.com/moltbot/moltbot-secure/proto/pairing/v1"
	"github.com/moltbot/moltbot-secure/services/testharness"
)

// Issue 5 (DM pairing) against the real images: fake Telegram and the local
// channel through the gateway, pairingd killed and restarted, the wrong-code
// lockout, bad input, and the refusal of dm.policy "open".

const (
	fakeBotToken   = "123456:TEST-fake-bot-token_abc"
	approvedNotice = "You're approved"
	queueFullReply = "try again later"
)

var codeLine = regexp.MustCompile(`(?m)^([A-HJ-NP-Z2-9]{8})$`)

func pairingConfig() []byte {
	return []byte(`{
  "version": 1,
  "channels": {
    "telegram": {"botToken": "${file:telegram.token}", "baseUrl": "` + testharness.FakeTelegramBaseURL + `"}
  }
}`)
}

// pairingStack starts the four services with a Telegram channel pointed at
// the fake Bot API, started on the stack's network.
func pairingStack(t *testing.T) (*testharness.Stack, *testharness.FakeTelegramServer) {
	t.Helper()
	// ${file:telegram.token} reads beneath the default file root, the
	// secret-files volume the gateway mounts read-only at /secret-files.
	files := t.TempDir()
	require.NoError(t, os.Chmod(files, 0o755))
	tokenFile := filepath.Join(files, "telegram.token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(fakeBotToken+"\n"), 0o600))
	require.NoError(t, os.Chown(tokenFile, testharness.UIDs()[testharness.Gateway], testharness.UIDs()[testharness.Gateway]))
	st := testharness.Start(t, testharness.Options{
		GatewayConfig: pairingConfig(),
		Service: map[string]testharness.ServiceOptions{
			testharness.Gateway: {Binds: []string{files + ":/secret-files:ro"}},
		},
	})
	ctx := ctxFor(t, time.Minute)
	fake, err := st.StartFakeTelegram(ctx, fakeBotToken)
	require.NoError(t, err)
	// The gateway's poller backs off while the fake was not there yet; a
	// restart makes it poll at once.
	require.NoError(t, st.Restart(ctx, testharness.Gateway))
	return st, fake
}

func codeIn(t testing.TB, text string) string {
	t.Helper()
	m := codeLine.FindStringSubmatch(text)
	require.NotNil(t, m, "no pairing code on its own line in %q", text)
	return m[1]
}

// retry calls f until it succeeds or ctx ends: the gateway's connection to
// a restarted pairingd comes back within its reconnect backoff.
func retry[T any](ctx context.Context, f func() (T, error)) (T, error) {
	for {
		v, err := f()
		if err == nil || status.Code(err) != codes.Unavailable {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func TestPairingEndToEnd(t *testing.T) {
	st, fake := pairingStack(t)
	gw := st.AdminGateway(t)
	pc := pairingv1.NewPairingClient(st.AdminConn(t))

	t.Run("telegram", func(t *testing.T) {
		ctx := ctxFor(t, 2*time.Minute)
		// An unknown user's DM: one reply with the code and the exact command.
		require.NoError(t, fake.DM(ctx, 1001, "alice", "hello"))
		got, err := fake.WaitSent(ctx, "1001", 0, 1)
		require.NoError(t, err)
		code := codeIn(t, got[0].Text)
		require.Contains(t, got[0].Text, "moltbot pairing approve telegram "+code)
		seq := got[len(got)-1].Seq

		// The owner approves with the real CLI binary (cli image, admin cert).
		out, err := st.RunCLI(ctx, nil, "pairing", "approve", "telegram", code)
		require.NoError(t, err)
		require.Equal(t, 0, out.Code, out.Logs)
		require.Contains(t, out.Logs, "approved telegram sender 1001")
		got, err = fake.WaitSent(ctx, "1001", seq, 1)
		require.NoError(t, err)
		require.Contains(t, got[0].Text, approvedNotice)
		seq = got[len(got)-1].Seq

		// The next DM reaches the agent and is answered.
		require.NoError(t, fake.DM(ctx, 1001, "alice", "ping one"))
		got, err = fake.WaitSent(ctx, "1001", seq, 1)
		require.NoError(t, err)
		require.Equal(t, "echo: ping one", got[0].Text)
		seq = got[len(got)-1].Seq

		// Another user still gets a code.
		require.NoError(t, fake.DM(ctx, 1002, "bob", "hi"))
		got2, err := fake.WaitSent(ctx, "1002", 0, 1)
		require.NoError(t, err)
		require.NotEqual(t, code, codeIn(t, got2[0].Text))

		// Revoke: blocked again (a fresh code, nothing reaches the agent).
		out, err = st.RunCLI(ctx, nil, "pairing", "revoke", "telegram", "1001")
		require.NoError(t, err)
		require.Equal(t, 0, out.Code, out.Logs)
		require.NoError(t, fake.DM(ctx, 1001, "alice", "still there?"))
		got, err = fake.WaitSent(ctx, "1001", seq, 1)
		require.NoError(t, err)
		codeIn(t, got[0].Text)
		require.NotContains(t, got[0].Text, "echo:")

		// `pairing list --json` shows both pending telegram requests.
		out, err = st.RunCLI(ctx, nil, "pairing", "list", "--channel", "telegram", "--json")
		require.NoError(t, err)
		require.Equal(t, 0, out.Code, out.Logs)
		// protojson varies its whitespace on purpose: compare without it.
		compact := strings.Join(strings.Fields(out.Logs), "")
		require.Contains(t, compact, `"sender_id":"1002"`)
		require.Contains(t, compact, `"sender_id":"1001"`)
		for _, id := range []string{"1001", "1002"} {
			l, err := pc.List(ctx, &pairingv1.ListRequest{Channel: "telegram"})
			require.NoError(t, err)
			for _, r := range l.GetRequests() {
				if r.GetSenderId() == id {
					_, err := pc.Reject(ctx, &pairingv1.RejectRequest{Channel: "telegram", Code: r.GetCode()})
					require.NoError(t, err)
				}
			}
		}
	})

	t.Run("local", func(t *testing.T) {
		ctx := ctxFor(t, time.Minute)
		r, err := gw.Send(ctx, &gatewayv1.SendRequest{Channel: "local", From: "alice", Text: "hi"})
		require.NoError(t, err)
		require.False(t, r.GetReachedAgent())
		require.Len(t, r.GetReplies(), 1)
		code := codeIn(t, r.GetReplies()[0])
		require.Contains(t, r.GetReplies()[0], "moltbot pairing approve local "+code)

		// Approved through the gateway's admin proxy; the notice waits in
		// alice's local mailbox and comes with her next exchange.
		a, err := pc.Approve(ctx, &pairingv1.ApproveRequest{Channel: "local", Code: strings.ToLower(code)})
		require.NoError(t, err)
		require.Equal(t, "alice", a.GetSenderId())
		r, err = gw.Send(ctx, &gatewayv1.SendRequest{Channel: "local", From: "alice", Text: "hello agent"})
		require.NoError(t, err)
		require.True(t, r.GetReachedAgent(), r.GetDecision())
		require.Equal(t, "agent:main:local:dm:alice", r.GetSessionKey(), "an approved sender gets her own session, not the owner's main")
		require.Len(t, r.GetReplies(), 2)
		require.Contains(t, r.GetReplies()[0], approvedNotice)
		require.Equal(t, "echo: hello agent", r.GetReplies()[1])

		// The same sender asking again gets the same code, not a new one.
		r, err = gw.Send(ctx, &gatewayv1.SendRequest{Channel: "local", From: "carol", Text: "hi"})
		require.NoError(t, err)
		require.False(t, r.GetReachedAgent())
		carol := codeIn(t, r.GetReplies()[0])
		require.NotEqual(t, code, carol)

		// A group not on the allowlist: nothing reaches the agent, no reply.
		r, err = gw.Send(ctx, &gatewayv1.SendRequest{Channel: "local", From: "alice", GroupId: "team", Text: "hi all"})
		require.NoError(t, err)
		require.False(t, r.GetReachedAgent())
		require.Empty(t, r.GetReplies())

		// Revoke: blocked again.
		_, err = pc.Revoke(ctx, &pairingv1.RevokeRequest{Channel: "local", SenderId: "alice"})
		require.NoError(t, err)
		r, err = gw.Send(ctx, &gatewayv1.SendRequest{Channel: "local", From: "alice", Text: "again"})
		require.NoError(t, err)
		require.False(t, r.GetReachedAgent())
		codeIn(t, r.GetReplies()[0])

		// Sessions: the RPC and the CLI.
		ss, err := gw.ListSessions(ctx, &gatewayv1.ListSessionsRequest{})
		require.NoError(t, err)
		keys := []string{}
		for _, s := range ss.GetSessions() {
			keys = append(keys, s.GetKey())
		}
		require.Contains(t, keys, "agent:main:local:dm:alice")
		require.NotContains(t, keys, "agent:main:main", "no owner is configured: nobody is in the main session")
		out, err := st.RunCLI(ctx, nil, "sessions", "list", "--json")
		require.NoError(t, err)
		require.Equal(t, 0, out.Code, out.Logs)
		require.Contains(t, out.Logs, "agent:main:local:dm:alice")
		// The CLI's message send, with its replies on stdout.
		// dora is not paired: the reply carries her code, and the CLI exits
		// 5 (not delivered) so a script can tell.
		out, err = st.RunCLI(ctx, nil, "message", "send", "--channel", "local", "--from", "dora", "hi there")
		require.NoError(t, err)
		require.Equal(t, 5, out.Code, out.Logs)
		require.Contains(t, out.Logs, "not delivered to the agent: dm pairing")
		require.Contains(t, out.Logs, "moltbot pairing approve local ")
		rejectAll(t, ctx, pc, "local")
	})

	t.Run("queue full", func(t *testing.T) {
		ctx := ctxFor(t, time.Minute)
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		w, err := pc.Watch(wctx, &pairingv1.WatchRequest{Channel: "local"})
		require.NoError(t, err)
		_, err = w.Header()
		require.NoError(t, err)
		for _, who := range []string{"q1", "q2", "q3"} {
			r, err := gw.Send(ctx, &gatewayv1.SendRequest{Channel: "local", From: who, Text: "hi"})
			require.NoError(t, err)
			codeIn(t, r.GetReplies()[0])
		}
		r, err := gw.Send(ctx, &gatewayv1.SendRequest{Channel: "local", From: "q4", Text: "hi"})
		require.NoError(t, err)
		require.Len(t, r.GetReplies(), 1)
		require.Contains(t, r.GetReplies()[0], queueFullReply)
		require.Nil(t, codeLine.FindStringSubmatch(r.GetReplies()[0]))
		var kinds []pairingv1.WatchResponse_Kind
		for len(kinds) < 4 {
			ev, err := w.Recv()
			require.NoError(t, err)
			kinds = append(kinds, ev.GetKind())
		}
		require.Equal(t, pairingv1.WatchResponse_KIND_QUEUE_FULL, kinds[3])
		l, err := pc.List(ctx, &pairingv1.ListRequest{Channel: "local"})
		require.NoError(t, err)
		require.Len(t, l.GetRequests(), 3, "the pending ones are kept")
		require.Equal(t, []string{"local"}, l.GetFullChannels())
		rejectAll(t, ctx, pc, "local")
	})

	t.Run("pairingd killed between request and approve", func(t *testing.T) {
		ctx := ctxFor(t, 2*time.Minute)
		r, err := gw.Send(ctx, &gatewayv1.SendRequest{Channel: "local", From: "dave", Text: "hi"})
		require.NoError(t, err)
		code := codeIn(t, r.GetReplies()[0])
		require.NoError(t, st.Kill(ctx, testharness.Pairingd))
		// While pairingd is down the pipeline fails closed.
		_, err = gw.Send(ctx, &gatewayv1.SendRequest{Channel: "local", From: "dave", Text: "anyone?"})
		require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
		require.NoError(t, st.StartAgain(ctx, testharness.Pairingd))
		_, err = retry(ctx, func() (*pairingv1.ApproveResponse, error) {
			return pc.Approve(noNotify(ctx), &pairingv1.ApproveRequest{Channel: "local", Code: code})
		})
		require.NoError(t, err, "the code survives a SIGKILL")
		require.NoError(t, st.Kill(ctx, testharness.Pairingd))
		require.NoError(t, st.StartAgain(ctx, testharness.Pairingd))
		r, err = retry(ctx, func() (*gatewayv1.SendResponse, error) {
			return gw.Send(ctx, &gatewayv1.SendRequest{Channel: "local", From: "dave", Text: "after two kills"})
		})
		require.NoError(t, err)
		require.True(t, r.GetReachedAgent(), "the allowlist survives a SIGKILL: %s", r.GetDecision())
		require.Equal(t, []string{"echo: after two kills"}, r.GetReplies())
	})

	t.Run("brute force", func(t *testing.T) {
		ctx := ctxFor(t, 3*time.Minute)
		r, err := gw.Send(ctx, &gatewayv1.SendRequest{Channel: "local", From: "eve-target", Text: "hi"})
		require.NoError(t, err)
		code := codeIn(t, r.GetReplies()[0])

		// 10,000 wrong codes straight at pairingd over mTLS as the gateway
		// identity (the path a compromised gateway would use).
		direct := pairingv1.NewPairingClient(st.ServiceConn(t, testharness.Pairingd, testharness.Gateway))
		res := bruteForce(ctx, t, direct, code, 10000)
		t.Logf("direct: %d attempts in %s: %d successes, %d not found, %d locked out", res.n, res.took, res.ok, res.notFound, res.locked)
		require.Zero(t, res.ok)
		require.Equal(t, 10, res.notFound, "the lockout engages after 10 wrong codes")
		require.Equal(t, 10000-10, res.locked)

		// The gateway's message pipeline is not locked out...
		r, err = gw.Send(ctx, &gatewayv1.SendRequest{Channel: "local", From: "dave", Text: "still served"})
		require.NoError(t, err)
		require.True(t, r.GetReachedAgent())
		// ...and the operator's right code still works (real CLI, via the proxy).
		out, err := st.RunCLI(ctx, nil, "pairing", "approve", "local", code, "--no-notify")
		require.NoError(t, err)
		require.Equal(t, 0, out.Code, out.Logs)

		// Through the gateway proxy: the forwarded caller is locked, not the gateway.
		r, err = gw.Send(ctx, &gatewayv1.SendRequest{Channel: "local", From: "eve-target-2", Text: "hi"})
		require.NoError(t, err)
		code = codeIn(t, r.GetReplies()[0])
		res = bruteForce(ctx, t, pc, code, 10000)
		t.Logf("proxy: %d attempts in %s: %d successes, %d not found, %d locked out", res.n, res.took, res.ok, res.notFound, res.locked)
		require.Zero(t, res.ok)
		require.Equal(t, 10, res.notFound)
		r, err = gw.Send(ctx, &gatewayv1.SendRequest{Channel: "local", From: "dave", Text: "still served"})
		require.NoError(t, err)
		require.True(t, r.GetReachedAgent())
		op := pairingv1.NewPairingClient(st.ServiceConn(t, testharness.Pairingd, testharness.CLI))
		_, err = op.Approve(ctx, &pairingv1.ApproveRequest{Channel: "local", Code: code})
		require.NoError(t, err, "the operator's own identity is not locked out")
	})

	t.Run("bad input", func(t *testing.T) {
		ctx := ctxFor(t, time.Minute)
		before, err := pc.List(ctx, &pairingv1.ListRequest{})
		require.NoError(t, err)
		allowedBefore, err := pc.ListAllowed(ctx, &pairingv1.ListAllowedRequest{})
		require.NoError(t, err)
		for _, tc := range []struct {
			name string
			call func() error
			want string
		}{
			{"unknown channel send", func() error {
				_, err := gw.Send(ctx, &gatewayv1.SendRequest{Channel: "nope", From: "x", Text: "hi"})
				return err
			}, `channel "nope"`},
			{"unknown channel approve", func() error {
				_, err := pc.Approve(ctx, &pairingv1.ApproveRequest{Channel: "nope", Code: "ABCDEFGH"})
				return err
			}, `channel "nope"`},
			{"malformed code", func() error {
				_, err := pc.Approve(ctx, &pairingv1.ApproveRequest{Channel: "local", Code: "0O1I!"})
				return err
			}, "code"},
			{"empty sender", func() error {
				_, err := gw.Send(ctx, &gatewayv1.SendRequest{Channel: "local", From: "", Text: "hi"})
				return err
			}, "from"},
			{"control characters in sender", func() error {
				_, err := gw.Send(ctx, &gatewayv1.SendRequest{Channel: "local", From: "a\x00b", Text: "hi"})
				return err
			}, "sender"},
			{"oversized text", func() error {
				_, err := gw.Send(ctx, &gatewayv1.SendRequest{Channel: "local", From: "mallory", Text: strings.Repeat("x", 20000)})
				return err
			}, "text"},
			{"empty revoke sender", func() error {
				_, err := pc.Revoke(ctx, &pairingv1.RevokeRequest{Channel: "local", SenderId: ""})
				return err
			}, "sender"},
		} {
			err := tc.call()
			require.Equal(t, codes.InvalidArgument, status.Code(err), "%s: %v", tc.name, err)
			require.Contains(t, strings.ToLower(status.Convert(err).Message()), tc.want, tc.name)
		}
		after, err := pc.List(ctx, &pairingv1.ListRequest{})
		require.NoError(t, err)
		require.Len(t, after.GetRequests(), len(before.GetRequests()), "nothing stored")
		allowedAfter, err := pc.ListAllowed(ctx, &pairingv1.ListAllowedRequest{})
		require.NoError(t, err)
		require.Len(t, allowedAfter.GetSenders(), len(allowedBefore.GetSenders()))
		// Still alive after all of it.
		_, err = gw.Status(ctx, &gatewayv1.StatusRequest{})
		require.NoError(t, err)
	})

	t.Run("proxy authorization", func(t *testing.T) {
		ctx := ctxFor(t, 30*time.Second)
		// Request, IsAllowed and Import are not exposed, even to the admin.
		_, err := pc.Request(ctx, &pairingv1.RequestRequest{Channel: "local", SenderId: "x"})
		require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
		_, err = pc.IsAllowed(ctx, &pairingv1.IsAllowedRequest{Channel: "local", SenderId: "x"})
		require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
		// A token-only client may send but not approve.
		tc := pairingv1.NewPairingClient(st.TokenConn(t))
		_, err = tc.List(ctx, &pairingv1.ListRequest{})
		require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	})
}

type bruteResult struct {
	n, ok, notFound, locked, other int
	took                           time.Duration
}

// bruteForce tries n random well-formed codes that are not code.
func bruteForce(ctx context.Context, t *testing.T, pc pairingv1.PairingClient, code string, n int) bruteResult {
	t.Helper()
	const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	res := bruteResult{n: n}
	ctx = noNotify(ctx)
	start := time.Now()
	buf := make([]byte, 8)
	for i := 0; i < n; i++ {
		_, _ = rand.Read(buf)
		for j := range buf {
			buf[j] = alphabet[buf[j]&31]
		}
		guess := string(buf)
		if guess == code {
			guess = "22222222"
		}
		_, err := pc.Approve(ctx, &pairingv1.ApproveRequest{Channel: "local", Code: guess})
		switch status.Code(err) {
		case codes.OK:
			res.ok++
		case codes.NotFound:
			res.notFound++
		case codes.ResourceExhausted:
			res.locked++
		default:
			res.other++
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	res.took = time.Since(start)
	return res
}

func rejectAll(t *testing.T, ctx context.Context, pc pairingv1.PairingClient, channel string) {
	t.Helper()
	l, err := pc.List(ctx, &pairingv1.ListRequest{Channel: channel})
	require.NoError(t, err)
	for _, r := range l.GetRequests() {
		_, err := pc.Reject(ctx, &pairingv1.RejectRequest{Channel: channel, Code: r.GetCode()})
		require.NoError(t, err)
	}
}

// TestPairingOpenPolicyRefused: dm.policy "open" stops the gateway at start
// with the field, the reason and the fix.
func TestPairingOpenPolicyRefused(t *testing.T) {
	st := testharness.Start(t, testharness.Options{Services: []string{testharness.Secretsd, testharness.Pairingd, testharness.Sandboxd}})
	ctx := ctxFor(t, time.Minute)
	// RunOnce gets a fresh state dir, so the config comes in by bind mount.
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o755))
	cfg := filepath.Join(dir, "moltbot.json")
	require.NoError(t, os.WriteFile(cfg, []byte(`{"version": 1, "channels": {"local": {"dm": {"policy": "open"}}}}`), 0o600))
	uid := testharness.UIDs()[testharness.Gateway]
	require.NoError(t, os.Chown(cfg, uid, uid))
	exit, err := st.RunOnce(ctx, testharness.Gateway, testharness.ServiceOptions{
		Binds: []string{dir + ":/cfg:ro"},
		Env:   map[string]string{"MOLTBOT_CONFIG_PATH": "/cfg/moltbot.json"},
	}, 30*time.Second)
	require.NoError(t, err)
	require.NotEqual(t, 0, exit.Code, exit.Logs)
	require.Contains(t, exit.Logs, "channels.local.dm.policy")
	require.Contains(t, exit.Logs, `"pairing"`)
	require.Contains(t, exit.Logs, "moltbot security migrate")
	t.Log(lastLines(exit.Logs, 3))

	// `moltbot config validate` (the real binary, offline on the file)
	// prints the field, the reason and the fix, and exits non-zero.
	bin, err := filepath.Abs("../../bin/moltbot")
	require.NoError(t, err)
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("bin/moltbot not built (make binaries): %v", err)
	}
	out, err := exec.CommandContext(ctx, bin, "config", "validate", "--file", cfg).CombinedOutput()
	require.Error(t, err, "%s", out)
	require.Contains(t, string(out), "channels.local.dm.policy")
	require.Contains(t, string(out), `"open" was removed`)
	require.Contains(t, string(out), "moltbot security migrate")
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// noNotify is `pairing approve --no-notify` on the proxy (harmless on pairingd).
func noNotify(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "x-moltbot-notify", "false")
}
