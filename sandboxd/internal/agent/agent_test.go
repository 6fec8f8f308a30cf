package agent

import (
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/sandboxd/internal/agentproto"
)

// The agent runs in-process here (not PID 1, so no sweep); the container
// tests in internal/backend cover PID 1 behaviour.
func startAgent(t *testing.T) (func(agentproto.Request) agentproto.Response, func()) {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	a := New(Config{In: inR, Out: outW})
	done := make(chan error, 1)
	go func() { done <- a.Run() }()
	call := func(req agentproto.Request) agentproto.Response {
		p, err := agentproto.EncodeRequest(req)
		require.NoError(t, err)
		_, err = inW.Write(agentproto.AppendFrame(nil, p))
		require.NoError(t, err)
		f, err := agentproto.ReadFrame(outR, agentproto.MaxResponseFrame)
		require.NoError(t, err)
		resp, err := agentproto.DecodeResponse(f)
		require.NoError(t, err)
		require.Equal(t, req.ID, resp.ID)
		return resp
	}
	stop := func() {
		_ = inW.Close()
		require.NoError(t, <-done)
	}
	return call, stop
}

func TestAgentExec(t *testing.T) {
	call, stop := startAgent(t)
	defer stop()
	require.Equal(t, agentproto.KindPong, call(agentproto.Request{Kind: agentproto.KindPing, ID: 1}).Kind)

	tests := []struct {
		name      string
		argv      []string
		stdin     string
		timeout   time.Duration
		cap       uint32
		code      int32
		stdout    string
		stderr    string
		flags     uint8
		maxWallMs int64
	}{
		{name: "echo", argv: []string{"/bin/sh", "-c", "echo out; echo err >&2; exit 3"}, code: 3, stdout: "out\n", stderr: "err\n"},
		{name: "stdin", argv: []string{"cat"}, stdin: "hello\x00\xff", stdout: "hello\x00\xff"},
		{name: "no stdin reads end of file", argv: []string{"cat"}, stdout: "", maxWallMs: 1500},
		{name: "PATH lookup, twice (cached)", argv: []string{"sh", "-c", "echo again"}, stdout: "again\n"},
		{name: "PATH lookup, first", argv: []string{"sh", "-c", "echo first"}, stdout: "first\n"},
		{name: "not found", argv: []string{"no-such-command-xyz"}, code: 127, flags: agentproto.FlagStartFailed},
		{name: "timeout", argv: []string{"sleep", "10"}, timeout: 200 * time.Millisecond, code: 137, flags: agentproto.FlagTimedOut | agentproto.FlagSignaled, maxWallMs: 1500},
		{name: "cap", argv: []string{"/bin/sh", "-c", "yes"}, cap: 1000, code: 137, stdout: "", flags: agentproto.FlagTruncated | agentproto.FlagSignaled},
		{name: "background child keeps pipe", argv: []string{"/bin/sh", "-c", "sleep 5 & echo done"}, stdout: "done\n", maxWallMs: 1500},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.timeout == 0 {
				tt.timeout = 5 * time.Second
			}
			if tt.cap == 0 {
				tt.cap = 1 << 20
			}
			start := time.Now()
			resp := call(agentproto.Request{Kind: agentproto.KindExec, ID: uint64(100 + i), Exec: &agentproto.Exec{
				Argv: tt.argv, Stdin: []byte(tt.stdin), Timeout: tt.timeout, OutputCap: tt.cap}})
			require.Equal(t, agentproto.KindResult, resp.Kind, resp.Message)
			r := resp.Result
			require.Equal(t, tt.code, r.ExitCode, "stderr: %s", r.Stderr)
			require.Equal(t, tt.flags, r.Flags&^agentproto.FlagPidsLimit)
			if tt.name == "cap" {
				require.Len(t, r.Stdout, 1000)
			} else {
				require.Equal(t, tt.stdout, string(r.Stdout))
			}
			if tt.stderr != "" {
				require.Equal(t, tt.stderr, string(r.Stderr))
			}
			if tt.maxWallMs > 0 {
				require.Less(t, time.Since(start).Milliseconds(), tt.maxWallMs)
			}
		})
	}
}

// A command found through a writable PATH directory is looked up again
// each time: a file created earlier on PATH must shadow it, as in a shell.
func TestLookPathNotCachedThroughWritableDirs(t *testing.T) {
	first, second := t.TempDir(), t.TempDir()
	script := func(dir, out string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "mbcmd"), []byte("#!/bin/sh\necho "+out+"\n"), 0o755))
	}
	script(second, "second")
	t.Setenv("PATH", first+string(os.PathListSeparator)+second+string(os.PathListSeparator)+os.Getenv("PATH"))
	call, stop := startAgent(t)
	defer stop()
	run := func(id uint64) string {
		resp := call(agentproto.Request{Kind: agentproto.KindExec, ID: id, Exec: &agentproto.Exec{Argv: []string{"mbcmd"}, Timeout: 5 * time.Second, OutputCap: 100}})
		return string(resp.Result.Stdout)
	}
	require.Equal(t, "second\n", run(1))
	script(first, "first")
	require.Equal(t, "first\n", run(2))
}
