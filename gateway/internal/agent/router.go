package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	sandboxv1 "github.com/moltbot/moltbot-secure/proto/sandbox/v1"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// IsMainSession reports whether key is an agent's main DM session,
// "agent:<id>:main". Groups, channels and every other DM are non-main.
func IsMainSession(key string) bool {
	p := strings.Split(key, ":")
	return len(p) == 3 && p[0] == "agent" && p[1] != "" && p[2] == "main"
}

// Sandboxed reports whether a session's commands go to sandboxd under mode.
func Sandboxed(mode sandboxv1.Mode, sessionKey string) bool {
	switch mode {
	case sandboxv1.Mode_MODE_OFF:
		return false
	case sandboxv1.Mode_MODE_ALL:
		return true
	default: // non-main, also when unset: the safe default
		return !IsMainSession(sessionKey)
	}
}

// Router is the Executor: it routes each command by the sandbox mode and
// the session. Sandboxed commands go to sandboxd with the current policy;
// when sandboxd refuses (Docker or the image missing), the command is
// refused too, never run unsandboxed.
type Router struct {
	Sandbox sandboxv1.SandboxClient
	Policy  PolicySource
	Local   *Local
	// Timeout and OutputCap bound every command (defaults 30 s, 64 KiB).
	Timeout   time.Duration
	OutputCap int
}

var _ Executor = (*Router)(nil)

// ErrRefused marks a command that was not run.
var ErrRefused = errors.New("command refused")

// Exec implements Executor.
func (r *Router) Exec(ctx context.Context, t Turn, command string) (ExecResult, error) {
	if strings.TrimSpace(command) == "" {
		return ExecResult{}, fmt.Errorf("empty command: %w", errs.ErrInvalidArgument)
	}
	timeout, outCap := r.Timeout, r.OutputCap
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	if outCap <= 0 {
		outCap = 64 << 10
	}
	pol, err := r.Policy()
	if err != nil {
		// Without a readable policy nothing is known to be safe to run.
		return ExecResult{}, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	if !Sandboxed(pol.GetMode(), t.SessionKey) {
		if r.Local == nil {
			return ExecResult{}, fmt.Errorf("%w: no local executor configured", ErrRefused)
		}
		return r.Local.Run(ctx, command, timeout, outCap)
	}
	if r.Sandbox == nil {
		return ExecResult{}, fmt.Errorf("%w: session %s is sandboxed but sandboxd is not configured (start sandboxd; never run unsandboxed)", ErrRefused, t.SessionKey)
	}
	resp, err := r.Sandbox.Exec(ctx, &sandboxv1.ExecRequest{SessionKey: t.SessionKey, AgentId: t.AgentID, Shell: command,
		Timeout: durationpb.New(timeout), OutputCapBytes: int64(outCap), Policy: pol})
	if err != nil {
		e := errs.FromStatus(err)
		return ExecResult{}, fmt.Errorf("%w: session %s is sandboxed (mode %s) and the sandbox is unavailable: %w",
			ErrRefused, t.SessionKey, modeName(pol.GetMode()), e)
	}
	return ExecResult{ExitCode: int(resp.GetExitCode()), Stdout: resp.GetStdout(), Stderr: resp.GetStderr(),
		Truncated: resp.GetTruncated(), Cause: causeName(resp.GetKillCause()), Sandboxed: true, Container: resp.GetContainerId()}, nil
}

func modeName(m sandboxv1.Mode) string {
	switch m {
	case sandboxv1.Mode_MODE_OFF:
		return "off"
	case sandboxv1.Mode_MODE_ALL:
		return "all"
	}
	return "non-main"
}

func causeName(c sandboxv1.KillCause) string {
	switch c {
	case sandboxv1.KillCause_KILL_CAUSE_TIMEOUT:
		return "timeout"
	case sandboxv1.KillCause_KILL_CAUSE_OOM:
		return "oom"
	case sandboxv1.KillCause_KILL_CAUSE_PIDS_LIMIT:
		return "pids_limit"
	case sandboxv1.KillCause_KILL_CAUSE_SIGNAL:
		return "signal"
	}
	return ""
}
