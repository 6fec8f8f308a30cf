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

// Router is the Executor: every command goes to sandboxd with the current
// policy, under the profile ChooseProfile picks from the mode, the session
// and whether the sender is an owner. The gateway runs nothing itself:
// when sandboxd refuses (Docker or the image missing), so is the command.
type Router struct {
	Sandbox sandboxv1.SandboxClient
	Policy  PolicySource
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
	if r.Sandbox == nil {
		return ExecResult{}, fmt.Errorf("%w: sandboxd is not configured, and the gateway runs no command itself (start sandboxd)", ErrRefused)
	}
	choice := ChooseProfile(pol.GetMode(), t.SessionKey, t.Owner)
	resp, err := r.Sandbox.Exec(ctx, &sandboxv1.ExecRequest{SessionKey: t.SessionKey, AgentId: t.AgentID, Shell: command,
		Timeout: durationpb.New(timeout), OutputCapBytes: int64(outCap), Policy: pol,
		Profile: choice.Profile, OwnerWorkspace: choice.OwnerWorkspace})
	if err != nil {
		e := errs.FromStatus(err)
		return ExecResult{}, fmt.Errorf("%w: session %s (mode %s, profile %s) and the sandbox is unavailable: %w",
			ErrRefused, t.SessionKey, modeName(pol.GetMode()), ProfileName(choice.Profile), e)
	}
	return ExecResult{ExitCode: int(resp.GetExitCode()), Stdout: resp.GetStdout(), Stderr: resp.GetStderr(),
		Truncated: resp.GetTruncated(), Cause: causeName(resp.GetKillCause()), Container: resp.GetContainerId(),
		Profile: ProfileName(choice.Profile)}, nil
}

// ProfileName is a profile's short name for replies and logs.
func ProfileName(p sandboxv1.Profile) string {
	if p == sandboxv1.Profile_PROFILE_MAIN {
		return "main"
	}
	return "hardened"
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
