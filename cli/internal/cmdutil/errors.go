package cmdutil

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// Exit codes: the one table scripts rely on (README "Exit codes").
const (
	ExitOK          = 0
	ExitError       = 1
	ExitUsage       = 2 // bad arguments, unknown command, conflicting or out-of-range flags
	ExitDegraded    = 3 // the command ran but found something down or below a bar
	ExitRefused     = 4 // token rejected, locked out, owner only
	ExitUndelivered = 5 // `message send`: the message did not reach the agent
)

// Kinds name the failure in the --json error object.
const (
	KindError           = "error"
	KindUsage           = "usage"
	KindDegraded        = "degraded"
	KindDown            = "down"        // nothing answers at the gateway address
	KindUnavailable     = "unavailable" // the gateway answers; a service behind it does not
	KindWrongCA         = "wrong_ca"
	KindNoBundle        = "no_bundle"
	KindUnauthenticated = "unauthenticated"
	KindLockedOut       = "locked_out"
	KindPermission      = "permission_denied"
	KindUndelivered     = "undelivered"
	KindNotFound        = "not_found"
	KindInvalid         = "invalid_argument"
	KindExists          = "already_exists"
	KindPrecondition    = "failed_precondition"
	KindTimeout         = "timeout"
	KindInternal        = "internal"
)

// UsageError is a bad flag or argument.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// DegradedError reports that the command worked but the result is bad
// (a service down, a score under --min-score). Its message is already printed.
type DegradedError struct{ Msg string }

func (e *DegradedError) Error() string { return e.Msg }

// UndeliveredError: `message send` ran, but the message did not reach the
// agent (the reply says why).
type UndeliveredError struct{ Channel, Decision string }

func (e *UndeliveredError) Error() string {
	return "not delivered to the agent: " + e.Decision
}

// Error is an error explained for people: a plain sentence, the fix, the
// kind for scripts and the exit code. It never carries gRPC's wrapper text.
type Error struct {
	Kind string
	Msg  string
	Fix  string
	Exit int
	// RetryAfter is the lockout's remaining seconds (KindLockedOut).
	RetryAfter int
	// Printed: the command already showed the result on stdout (status,
	// audit), so Report adds nothing.
	Printed bool
	Err     error
}

func (e *Error) Error() string {
	if e.Fix == "" || strings.Contains(e.Msg, e.Fix) {
		return e.Msg
	}
	return e.Msg + "\n  fix: " + e.Fix
}

func (e *Error) Unwrap() error { return e.Err }

// Where says what the CLI was talking to, so an explanation can name it.
type Where struct {
	Addr        string // gateway address
	TokenSource string // where the token came from (a path or $NAME), never the token
	Bundle      string // the stack's bundle dir when one is known, for "use this one"
}

var retryAfter = regexp.MustCompile(`retry after (\d+) ?s`)

// Explain maps err to the sentence, fix, kind and exit code the CLI shows.
func Explain(err error, w Where) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var u *UsageError
	if errors.As(err, &u) {
		return &Error{Kind: KindUsage, Msg: clean(err.Error()), Exit: ExitUsage, Err: err}
	}
	var d *DegradedError
	if errors.As(err, &d) {
		return &Error{Kind: KindDegraded, Msg: d.Msg, Exit: ExitDegraded, Printed: true, Err: err}
	}
	var nd *UndeliveredError
	if errors.As(err, &nd) {
		return &Error{Kind: KindUndelivered, Msg: nd.Error(), Fix: undeliveredFix(nd.Channel, nd.Decision), Exit: ExitUndelivered, Err: err}
	}
	if errors.Is(err, ErrNoGatewayToken) {
		return &Error{Kind: KindNoBundle, Msg: clean(err.Error()), Exit: ExitError, Err: err,
			Fix: "start the stack with `make up` (it writes the bundle and " + PointerPath + "), or pass --state-dir DIR"}
	}
	st, ok := statusOf(err)
	if !ok {
		if errors.Is(err, context.DeadlineExceeded) {
			return &Error{Kind: KindTimeout, Msg: clean(err.Error()), Exit: ExitError, Err: err}
		}
		return &Error{Kind: KindError, Msg: clean(err.Error()), Exit: ExitError, Err: err}
	}
	desc := st.Message()
	// Keep whatever context the caller wrapped around the status.
	msg := clean(err.Error())
	if msg == "" {
		msg = desc
	}
	e = &Error{Msg: msg, Exit: ExitError, Err: err}
	switch st.Code() {
	case codes.Unavailable:
		switch {
		case tlsMismatch(desc):
			e.Kind, e.Exit = KindWrongCA, ExitError
			e.Msg = fmt.Sprintf("the gateway at %s has a certificate this bundle's CA does not trust: the bundle belongs to another stack", w.Addr)
			e.Fix = "use the running stack's bundle: --state-dir DIR (make up writes ./.moltbot and " + PointerPath + ")"
			if w.Bundle != "" {
				e.Fix = "use the running stack's bundle: --state-dir " + w.Bundle
			}
		case errs.IsConnectFailure(desc):
			e.Kind, e.Exit = KindDown, ExitDegraded
			e.Msg = fmt.Sprintf("the stack is not running (nothing answers at %s)", w.Addr)
			e.Fix = "make up"
		default:
			e.Kind, e.Exit = KindUnavailable, ExitDegraded
			e.Msg = "a service is down: " + msg
			e.Fix = "moltbot status --all names it; make up restarts the stack"
		}
	case codes.Unauthenticated:
		e.Kind, e.Exit = KindUnauthenticated, ExitRefused
		src := w.TokenSource
		if src == "" {
			src = "the bundle"
		}
		e.Msg = fmt.Sprintf("the gateway rejected the token from %s: %s", src, desc)
		use := "--state-dir the running stack's bundle (make up writes ./.moltbot and names it in " + PointerPath + ")"
		if w.Bundle != "" {
			use = "--state-dir " + w.Bundle + " (the running stack's bundle)"
		}
		if strings.HasPrefix(src, "$") {
			e.Fix = "set " + EnvGatewayToken + " to the stack's gateway token, or unset it to use the bundle's; or " + use
		} else {
			e.Fix = "this bundle's token is not the running stack's: " + use
		}
	case codes.ResourceExhausted:
		e.Kind, e.Exit = KindLockedOut, ExitRefused
		e.Msg = "locked out by the gateway: " + desc
		if m := retryAfter.FindStringSubmatch(desc); m != nil {
			e.RetryAfter, _ = strconv.Atoi(m[1])
			e.Fix = fmt.Sprintf("wait %s s, then retry with the right token", m[1])
		} else {
			e.Fix = "wait, then retry with the right token"
		}
	case codes.PermissionDenied:
		e.Kind, e.Exit = KindPermission, ExitRefused
		e.Msg = "refused: " + msg
		if strings.HasPrefix(desc, "owner only") {
			e.Fix = auth.OwnerBundleFix
		}
	case codes.NotFound:
		e.Kind = KindNotFound
	case codes.InvalidArgument:
		e.Kind = KindInvalid
	case codes.AlreadyExists:
		e.Kind = KindExists
	case codes.FailedPrecondition:
		e.Kind = KindPrecondition
	case codes.DeadlineExceeded:
		e.Kind = KindTimeout
		e.Msg = "the gateway did not answer in time: " + msg
	case codes.Unimplemented:
		e.Kind = KindInternal
		e.Msg = "the gateway does not offer this call (an older image?): " + msg
		e.Fix = "rebuild and restart the stack: make up"
	default:
		e.Kind = KindInternal
		e.Msg = "the gateway failed: " + msg
		e.Fix = "see the gateway's log: docker compose logs gateway"
	}
	return e
}

// ExitCode maps an error to the documented exit code.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	return Explain(err, Where{}).Exit
}

// Report writes e for a person (text) or a script (--json: one JSON
// object on w). Nothing is written when the command already printed the
// result (status, audit): its own output says it, in JSON with --json, and
// a second object would break a script reading both streams.
func Report(w io.Writer, e *Error, asJSON bool) {
	if e == nil || e.Printed {
		return
	}
	if asJSON {
		obj := struct {
			Error      string `json:"error"`
			Kind       string `json:"kind"`
			Exit       int    `json:"exit"`
			Fix        string `json:"fix,omitempty"`
			RetryAfter int    `json:"retry_after_s,omitempty"`
		}{e.Msg, e.Kind, e.Exit, e.Fix, e.RetryAfter}
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(obj)
		return
	}
	fmt.Fprintln(w, "moltbot: "+e.Error())
}

// undeliveredFix turns the policy's reason (gateway policy.Reason*) into
// what the operator can do about it.
func undeliveredFix(channel, decision string) string {
	switch {
	case strings.Contains(decision, "pairing service"):
		return "moltbot status --all (pairingd must be up)"
	case strings.Contains(decision, "pairing"):
		return fmt.Sprintf("approve the sender with the code in the reply: moltbot pairing approve %s <code>", channel)
	case strings.Contains(decision, "allowFrom"):
		return fmt.Sprintf("add the sender to channels.%s.dm.allowFrom (or the group to groups.allowFrom): moltbot config set", channel)
	case strings.Contains(decision, "disabled"):
		return fmt.Sprintf("enable it in channels.%s (moltbot config set)", channel)
	}
	return ""
}

// statusOf finds the innermost gRPC status in err's chain.
func statusOf(err error) (*status.Status, bool) {
	var gs interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &gs) {
		return nil, false
	}
	st := gs.GRPCStatus()
	return st, st != nil && st.Code() != codes.OK
}

// clean strips gRPC's wrapper text wherever wrapping left it.
func clean(s string) string { return errs.StripRPC(s) }

func tlsMismatch(desc string) bool {
	return strings.Contains(desc, "authentication handshake failed") &&
		(strings.Contains(desc, "x509") || strings.Contains(desc, "certificate"))
}
