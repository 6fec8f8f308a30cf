// Package agent defines how the gateway talks to an agent backend and how
// the agent's tool calls are executed. The message pipeline calls an Agent;
// the Agent runs its `exec` tool through an Executor, which sends every
// command to sandboxd under the profile ChooseProfile picks: the gateway
// itself never runs a command.
package agent

import "context"

// Turn is one inbound message to the agent, after the DM/group policy let it through.
type Turn struct {
	SessionKey string // e.g. agent:main:main, agent:main:telegram:group:-100123
	AgentID    string
	Channel    string
	SenderID   string
	Main       bool // the agent's main DM session (only an owner's DM)
	Owner      bool // the sender is one of the channel's owner ids
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
	Container string // the sandbox container: every command runs in one
	Profile   string // "main" or "hardened"
}

// Executor runs a tool command for a turn's session.
type Executor interface {
	Exec(ctx context.Context, t Turn, command string) (ExecResult, error)
}
