// Package agent defines how the gateway talks to an agent backend and how
// the agent's tool calls are executed. The message pipeline calls an Agent;
// the Agent runs its `exec` tool through an Executor, which routes the
// command by the session's sandbox policy (main session in-process,
// non-main to sandboxd).
package agent

import "context"

// Turn is one inbound message to the agent, after the DM/group policy let it through.
type Turn struct {
	SessionKey string // e.g. agent:main:main, agent:main:telegram:group:-100123
	AgentID    string
	Channel    string
	SenderID   string
	Main       bool // the agent's main DM session
	Text       string
}

// Agent produces the reply to a turn.
type Agent interface {
	Reply(ctx context.Context, t Turn) (string, error)
}

// ExecResult is the outcome of one tool command.
type ExecResult struct {
	ExitCode  int
	Stdout    []byte
	Stderr    []byte
	Truncated bool
	Cause     string // "", "timeout", "oom", "pids_limit"
	Sandboxed bool
	Container string
}

// Executor runs a tool command for a turn's session.
type Executor interface {
	Exec(ctx context.Context, t Turn, command string) (ExecResult, error)
}
