package agent

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ExecPrefix starts a message that asks the built-in agent to run a command.
const ExecPrefix = "/exec"

// maxReplyOutput bounds the command output quoted in a reply (chat
// messages are short: Telegram allows 4096 characters).
const maxReplyOutput = 3000

// Echo is the built-in agent: it answers "echo: <text>", and runs
// "/exec <command>" through its Executor (the exec tool), so the sandbox
// path is visible end to end without a model.
type Echo struct {
	Executor Executor
	// AllowExec decides whether a sender may use /exec; nil allows every
	// sender the DM/group policy already let through.
	AllowExec func(Turn) bool
}

var _ Agent = (*Echo)(nil)

// Reply implements Agent. A refused or failed command is reported in the
// reply (with the fix sandboxd names), not as an error: the sender is the
// one who needs to read it.
func (e *Echo) Reply(ctx context.Context, t Turn) (string, error) {
	cmd, ok := execCommand(t.Text)
	if !ok {
		return "echo: " + t.Text, nil
	}
	switch {
	case e.Executor == nil:
		return "exec: this gateway has no executor configured", nil
	case e.AllowExec != nil && !e.AllowExec(t):
		return "exec: not allowed for this sender", nil
	case cmd == "":
		return "usage: /exec <command>", nil
	}
	res, err := e.Executor.Exec(ctx, t, cmd)
	if err != nil {
		return "exec refused: " + err.Error(), nil
	}
	return FormatResult(cmd, res), nil
}

// execCommand returns the command of an "/exec <command>" message.
func execCommand(text string) (string, bool) {
	t := strings.TrimSpace(text)
	rest, ok := strings.CutPrefix(t, ExecPrefix)
	if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '\t' && rest[0] != '\n') {
		return "", false
	}
	return strings.TrimSpace(rest), true
}

// FormatResult renders a command's outcome for a chat reply: the output,
// then the exit code, where it ran and, when it was killed, why.
func FormatResult(cmd string, r ExecResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "$ %s\n", cmd)
	out := quote(r.Stdout)
	if len(r.Stderr) > 0 {
		if out != "" && !strings.HasSuffix(out, "\n") {
			out += "\n"
		}
		out += quote(r.Stderr)
	}
	if len(out) > maxReplyOutput {
		cut := maxReplyOutput
		for cut > 0 && !utf8.RuneStart(out[cut]) {
			cut--
		}
		out, r.Truncated = out[:cut], true
	}
	b.WriteString(out)
	if out != "" && !strings.HasSuffix(out, "\n") {
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "[exit %d", r.ExitCode)
	if r.Cause != "" {
		fmt.Fprintf(&b, ", killed: %s", r.Cause)
	}
	if r.Truncated {
		b.WriteString(", output truncated")
	}
	c := r.Container
	if len(c) > 12 {
		c = c[:12]
	}
	fmt.Fprintf(&b, ", sandbox %s, profile %s", c, r.Profile)
	b.WriteString("]")
	return b.String()
}

// quote makes command output safe to put in a text message (it is bytes,
// maybe not UTF-8).
func quote(p []byte) string { return strings.ToValidUTF8(string(p), "\uFFFD") }
