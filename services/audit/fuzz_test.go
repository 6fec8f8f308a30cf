package audit

import (
	"bytes"
	"encoding/json"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzAudit feeds arbitrary bytes to the engine as the config, as a stray
// backup and as an auth-profiles file: whatever comes in, Run returns a
// report (never a panic), the renderers and the fix planner cope with it.
func FuzzAudit(f *testing.F) {
	for _, s := range []string{
		seedBefore, `{}`, `null`, `[]`, `{"gateway":5}`, `{"gateway":{"auth":{"token":{"$enc":"v1"}}}}`,
		`{"channels":{"x":{"accounts":{"a":{"dm":{"policy":"open","allowFrom":["*",1,null]}}},"groups":{"g":{"allowFrom":"*"}}}}}`,
		`{"security":{"acknowledged":[{"id":"sandbox.mode_off","reason":"r","until":"2020-01-01"},7]}}`,
		`{"agents":{"list":[null,{"sandbox":{"docker":{"binds":[1,"/var/run/docker.sock:/s"],"capAdd":"ALL"}}}]}}`,
		`{"gateway":{"auth":{"token":"${file:x}"},"controlUi":{"allowInsecureAuth":"yes"}},"logging":{"redactSensitive":0}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var v any
		in := Input{ProcessUID: 1000, Now: now}
		if err := json.Unmarshal(b, &v); err != nil {
			in.ConfigErr = err
		}
		in.Config, _ = v.(map[string]any)
		in.Snapshot = Snapshot{Root: "/state", Entries: []Entry{
			{Rel: ".", IsDir: true, Mode: 0o700, UID: 1000},
			{Rel: "moltbot.json", Mode: 0o600, UID: 1000, Content: b},
			{Rel: "moltbot.json.bak", Mode: 0o600, UID: 1000, Content: b},
			{Rel: "agents/a/agent/auth-profiles.json", Mode: 0o600, UID: 1000, Content: b},
			{Rel: "credentials/c.json", Mode: 0o600, UID: 1000, Content: b},
		}}
		r := Run(in)
		require.True(t, r.Has("summary.attack_surface"))
		require.GreaterOrEqual(t, r.Score, 0)
		require.LessOrEqual(t, r.Score, 100)
		require.Equal(t, Band(r.Score), r.Band)
		require.False(t, r.Has("audit.internal_error"), "%+v", r.Findings)
		plan := Plan(r, in)
		tree, _ := ApplyConfigFixes(in.Config, plan)
		_, again := ApplyConfigFixes(tree, plan)
		require.Empty(t, again, "config fixes are idempotent")
		require.NoError(t, Text(io.Discard, r, TextOptions{Color: true}))
		var buf bytes.Buffer
		require.NoError(t, JSON(&buf, r, JSONOptions{}))
		require.True(t, json.Valid(buf.Bytes()))
		buf.Reset()
		require.NoError(t, SARIF(&buf, r, SARIFOptions{}))
		require.True(t, json.Valid(buf.Bytes()))
	})
}
