// Package execlog records main-session commands in the security log: the
// main session is the owner's and its commands run with the most reach, so
// each one is a decision on record before it runs. It wraps whatever
// agent.Executor routes commands; the router itself needs no change.
package execlog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/moltbot/moltbot-secure/gateway/internal/agent"
	"github.com/moltbot/moltbot-secure/services/errs"
	"github.com/moltbot/moltbot-secure/services/seclog"
)

// Executor records each main-session command with Log, then runs it with
// Next. A command that cannot be recorded is refused (fail closed).
type Executor struct {
	Next agent.Executor
	Log  seclog.Recorder
}

var _ agent.Executor = (*Executor)(nil)

// Wrap returns next recording into log.
func Wrap(next agent.Executor, log seclog.Recorder) *Executor {
	return &Executor{Next: next, Log: log}
}

// Exec implements agent.Executor.
func (e *Executor) Exec(ctx context.Context, t agent.Turn, command string) (agent.ExecResult, error) {
	if t.Main {
		if err := e.Log.Record(Event(t, command)); err != nil {
			return agent.ExecResult{}, fmt.Errorf("%w: a main-session command is run only once it is in the security log: %w: %w", agent.ErrRefused, err, errs.ErrUnavailable)
		}
	}
	return e.Next.Exec(ctx, t, command)
}

// Event is the record of one main-session command: who and where, the
// program name and a SHA-256 of the whole command, never its arguments
// (they may carry a secret).
func Event(t agent.Turn, command string) seclog.Event {
	sum := sha256.Sum256([]byte(command))
	return seclog.Event{Kind: "exec.main", Actor: t.Channel + ":" + t.SenderID, Target: t.SessionKey,
		Fields: map[string]string{"program": program(command), "sha256": hex.EncodeToString(sum[:])}}
}

// program is the command's first word, cut to 64 bytes.
func program(command string) string {
	f := strings.Fields(command)
	if len(f) == 0 {
		return ""
	}
	p := f[0]
	for len(p) > 64 {
		_, n := utf8.DecodeLastRuneInString(p)
		p = p[:len(p)-n]
	}
	return p
}
