package cmdutil_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	"github.com/moltbot/moltbot-secure/services/errs"
)

func TestExplain(t *testing.T) {
	w := cmdutil.Where{Addr: "127.0.0.1:18789", TokenSource: "$CLAWDBOT_GATEWAY_TOKEN"}
	dial := status.Error(codes.Unavailable, `connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:18789: connect: connection refused"`)
	for _, tc := range []struct {
		name string
		err  error
		kind string
		exit int
		msg  []string
		fix  string
	}{
		{"usage", &cmdutil.UsageError{Err: errors.New("--min-score 200: the score is 0-100")}, cmdutil.KindUsage, 2, []string{"0-100"}, ""},
		{"degraded", &cmdutil.DegradedError{Msg: "1 service(s) down"}, cmdutil.KindDegraded, 3, []string{"1 service(s) down"}, ""},
		{"undelivered", &cmdutil.UndeliveredError{Channel: "local", Decision: "dm pairing: code sent"}, cmdutil.KindUndelivered, 5,
			[]string{"not delivered"}, "moltbot pairing approve local <code>"},
		{"stack down", dial, cmdutil.KindDown, 3, []string{"the stack is not running (nothing answers at 127.0.0.1:18789)"}, "make up"},
		{"stack down, through the client interceptor", errs.FromStatus(dial), cmdutil.KindDown, 3, []string{"the stack is not running"}, "make up"},
		{"another stack's CA", status.Error(codes.Unavailable, `connection error: desc = "transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate signed by unknown authority"`),
			cmdutil.KindWrongCA, 1, []string{"does not trust"}, "--state-dir"},
		{"a service behind the gateway", status.Error(codes.Unavailable, "secretsd is unreachable"), cmdutil.KindUnavailable, 3,
			[]string{"a service is down: secretsd is unreachable"}, "status --all"},
		{"token rejected", status.Error(codes.Unauthenticated, "invalid token"), cmdutil.KindUnauthenticated, 4,
			[]string{"rejected the token from $CLAWDBOT_GATEWAY_TOKEN: invalid token"}, "or unset it to use the bundle's"},
		{"locked out", status.Error(codes.ResourceExhausted, "too many failed authentication attempts from this address: retry after 42 s"),
			cmdutil.KindLockedOut, 4, []string{"locked out", "retry after 42 s"}, "wait 42 s"},
		{"owner only", errs.FromStatus(status.Error(codes.PermissionDenied, "owner only: RevealConfig needs the owner's certificate")),
			cmdutil.KindPermission, 4, []string{"refused: owner only: RevealConfig"}, "cli.pem"},
		{"not found, wrapped by a caller", fmt.Errorf("approve: %w", status.Error(codes.NotFound, "no pending pairing request with that code")),
			cmdutil.KindNotFound, 1, []string{"approve: no pending pairing request with that code"}, ""},
		{"internal", status.Error(codes.Internal, "internal error"), cmdutil.KindInternal, 1, []string{"the gateway failed"}, "logs gateway"},
		{"plain error", errors.New("open x: permission denied"), cmdutil.KindError, 1, []string{"open x"}, ""},
		{"timeout", fmt.Errorf("wait: %w", context.DeadlineExceeded), cmdutil.KindTimeout, 1, []string{"deadline"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := cmdutil.Explain(tc.err, w)
			require.Equal(t, tc.kind, e.Kind)
			require.Equal(t, tc.exit, e.Exit)
			require.Equal(t, tc.exit, cmdutil.ExitCode(tc.err))
			for _, m := range tc.msg {
				require.Contains(t, e.Msg, m)
			}
			require.Contains(t, e.Fix, tc.fix)
			require.NotContains(t, e.Error(), "rpc error")
			require.NotContains(t, e.Error(), "code =")
			require.ErrorIs(t, e, tc.err, "the cause stays reachable")
		})
	}
	require.Equal(t, cmdutil.ExitOK, cmdutil.ExitCode(nil))

	// A token from the bundle's file: the fix is the right bundle.
	e := cmdutil.Explain(status.Error(codes.Unauthenticated, "invalid token"),
		cmdutil.Where{TokenSource: "/home/u/.moltbot/pki/gateway-auth.token", Bundle: "/src/moltbot/.moltbot"})
	require.Equal(t, "the gateway rejected the token from /home/u/.moltbot/pki/gateway-auth.token: invalid token", e.Msg)
	require.Equal(t, "this bundle's token is not the running stack's: --state-dir /src/moltbot/.moltbot (the running stack's bundle)", e.Fix)
}

func TestReport(t *testing.T) {
	e := cmdutil.Explain(status.Error(codes.ResourceExhausted, "retry after 7 s"), cmdutil.Where{})
	var js bytes.Buffer
	cmdutil.Report(&js, e, true)
	var got map[string]any
	require.NoError(t, json.Unmarshal(js.Bytes(), &got), js.String())
	require.Equal(t, map[string]any{"error": "locked out by the gateway: retry after 7 s", "kind": "locked_out", "exit": 4.0,
		"fix": "wait 7 s, then retry with the right token", "retry_after_s": 7.0}, got)

	var txt bytes.Buffer
	cmdutil.Report(&txt, e, false)
	require.Equal(t, "moltbot: locked out by the gateway: retry after 7 s\n  fix: wait 7 s, then retry with the right token\n", txt.String())

	// A result the command already printed (in JSON with --json) gets
	// nothing more: a second object would break a script reading both.
	d := cmdutil.Explain(&cmdutil.DegradedError{Msg: "score 80 is below --min-score 100"}, cmdutil.Where{})
	txt.Reset()
	cmdutil.Report(&txt, d, false)
	require.Empty(t, txt.String())
	js.Reset()
	cmdutil.Report(&js, d, true)
	require.Empty(t, js.String())

	// No HTML escaping.
	js.Reset()
	cmdutil.Report(&js, cmdutil.Explain(errors.New("value <encrypted> & more"), cmdutil.Where{}), true)
	require.Contains(t, js.String(), "<encrypted> & more")
}
