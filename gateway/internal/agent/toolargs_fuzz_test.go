package agent

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// recordExec stands in for sandboxd behind the Router (whose real path has
// its own tests): it only records what would run.
type recordExec struct{ got []string }

func (r *recordExec) Exec(_ context.Context, _ Turn, command string) (ExecResult, error) {
	r.got = append(r.got, command)
	return ExecResult{}, nil
}

// FuzzToolArguments feeds a model's tool-call arguments (a JSON string the
// model writes, so outside input) to runTool. No panic; at most one command
// runs, and only the "command" string of a JSON object, never blank; any
// other arguments get an error the model can read.
func FuzzToolArguments(f *testing.F) {
	for _, s := range []string{`{"command":"echo ok"}`, `{"command":"  "}`, `not json`, `{"command":1}`, `["echo"]`,
		`{"command":"a","command":"b"}`, `{"command":"x\u0000y"}`, `null`, `{"command":"ls"} trailing`} {
		f.Add(s, ExecToolName)
	}
	f.Add(`{"command":"ls"}`, "browse")
	f.Fuzz(func(t *testing.T, args, name string) {
		rec := &recordExec{}
		o := &OpenAI{Executor: rec}
		out := o.runTool(context.Background(), Turn{SessionKey: "agent:main:main", Main: true, Owner: true},
			toolCall{ID: "c", Type: "function", Function: toolFunction{Name: name, Arguments: args}})
		if len(rec.got) > 1 {
			t.Fatalf("one tool call ran %d commands", len(rec.got))
		}
		if len(rec.got) == 0 {
			if !strings.HasPrefix(out, "error: ") {
				t.Fatalf("nothing ran but the model is not told why: %q", out)
			}
			return
		}
		var want struct {
			Command string `json:"command"`
		}
		if name != ExecToolName || json.Unmarshal([]byte(args), &want) != nil || want.Command != rec.got[0] || strings.TrimSpace(rec.got[0]) == "" {
			t.Fatalf("ran %q for tool %q with arguments %q", rec.got[0], name, args)
		}
	})
}
