package audit

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestOwnerFindings: an owner list that is not exact ids would put
// non-owners in the main session (critical, remedy names a real command);
// entries that match no sender are a warning; exact ids are clean.
func TestOwnerFindings(t *testing.T) {
	tok := `"gateway":{"auth":{"token":` + refToken + `}}`
	for _, tc := range []struct {
		name string
		cfg  string
		id   string
		sev  Severity
	}{
		{"star", `{` + tok + `,"channels":{"telegram":{"owner":["*"]}}}`, "channels.telegram.owner.wildcard", Critical},
		{"glob among ids", `{` + tok + `,"channels":{"local":{"owner":["me","m?"]}}}`, "channels.local.owner.wildcard", Critical},
		{"account", `{` + tok + `,"channels":{"telegram":{"accounts":{"w":{"owner":["4*"]}}}}}`, "channels.telegram.owner.wildcard", Critical},
		{"empty id", `{` + tok + `,"channels":{"telegram":{"owner":[""]}}}`, "channels.telegram.owner.unmatched", Warn},
		{"prefixed id", `{` + tok + `,"channels":{"telegram":{"owner":["tg:42"]}}}`, "channels.telegram.owner.unmatched", Warn},
		{"object id", `{` + tok + `,"channels":{"telegram":{"owner":[{"id":"42"}]}}}`, "channels.telegram.owner.unmatched", Warn},
		{"exact ids", `{` + tok + `,"channels":{"telegram":{"owner":["42",77],"dm":{"allowFrom":["42","43"]}}}}`, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Run(baseInput(parse(t, tc.cfg)))
			if tc.id == "" {
				for _, f := range r.Findings {
					require.NotContains(t, f.ID, ".owner.", "exact owner ids are clean: %+v", f)
				}
				return
			}
			f, ok := r.Find(tc.id)
			require.True(t, ok, "findings: %+v", r.Findings)
			require.Equal(t, tc.sev, f.Severity)
			require.Contains(t, f.Remedy, "moltbot config set channels.")
			if tc.sev == Critical {
				require.Contains(t, f.Remedy, "--owner")
				require.Less(t, r.Score, 100)
			}
		})
	}
}
