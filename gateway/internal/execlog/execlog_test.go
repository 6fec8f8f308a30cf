package execlog

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/gateway/internal/agent"
	"github.com/moltbot/moltbot-secure/services/seclog"
)

type ran struct{ cmds []string }

func (r *ran) Exec(_ context.Context, _ agent.Turn, c string) (agent.ExecResult, error) {
	r.cmds = append(r.cmds, c)
	return agent.ExecResult{}, nil
}

func TestMainSessionCommandsAreRecordedFirst(t *testing.T) {
	key := make([]byte, seclog.KeySize)
	_, _ = rand.Read(key)
	l, err := seclog.Open(t.TempDir(), key)
	require.NoError(t, err)
	next := &ran{}
	e := Wrap(next, l)
	ctx := context.Background()
	mainT := agent.Turn{SessionKey: "agent:main:main", Channel: "telegram", SenderID: "42", Main: true}
	const secret = "sk-live-0123456789abcdef"
	tests := []struct {
		name    string
		turn    agent.Turn
		cmd     string
		records bool
	}{
		{"main session", mainT, "curl -H 'Authorization: Bearer " + secret + "' https://example.org", true},
		{"non-main session", agent.Turn{SessionKey: "agent:main:telegram:dm:7", Channel: "telegram", SenderID: "7"}, "id -u", false},
		{"long program name", mainT, strings.Repeat("é", 100) + " x", true},
	}
	want := 0
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.Exec(ctx, tc.turn, tc.cmd)
			require.NoError(t, err)
			if tc.records {
				want++
			}
			var got []seclog.Line
			_, err = l.Verify(func(_ int, raw string) {
				require.NotContains(t, raw, secret, "never the arguments")
				var ln seclog.Line
				require.NoError(t, json.Unmarshal([]byte(raw), &ln))
				got = append(got, ln)
			})
			require.NoError(t, err)
			require.Len(t, got, want)
			if tc.records {
				ev := got[len(got)-1]
				require.Equal(t, "exec.main", ev.Kind)
				require.Equal(t, "telegram:42", ev.Actor)
				require.Equal(t, Event(tc.turn, tc.cmd), ev.Event)
				require.LessOrEqual(t, len(ev.Fields["program"]), 64)
			}
		})
	}
	require.Len(t, next.cmds, 3)

	// A closed log cannot record: the main session's command is refused.
	require.NoError(t, l.Close())
	_, err = e.Exec(ctx, mainT, "id")
	require.ErrorIs(t, err, agent.ErrRefused)
	require.Len(t, next.cmds, 3, "not run")
	_, err = e.Exec(ctx, agent.Turn{SessionKey: "agent:main:telegram:dm:7"}, "id")
	require.NoError(t, err, "other sessions do not depend on the log")
}
